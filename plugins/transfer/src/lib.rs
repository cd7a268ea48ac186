//! `ws transfer`: the relay between `ws send` and `ws receive`, a broadcast server that
//! forwards frames as they arrive (`ws_common::frame_relay`), so any file size passes through
//! in constant memory, with backpressure from the slowest receiver.

use std::ffi::{CStr, OsString};

use clap::Parser;
use ws_common::frame_relay::{FrameObserver, FrameRelayArgs, FrameRoom};
use ws_common::info;
use ws_common::server::ServerArgs;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// File-transfer relay
#[derive(Debug, Parser)]
#[command(
    name = "ws transfer",
    about = "File-transfer relay: forwards every message to every other client, frame by frame"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    relay: FrameRelayArgs,
}

struct LogTransfers;

impl FrameObserver for LogTransfers {
    fn on_message(&self, id: u64, bytes: u64, receivers: usize) {
        info!("ws_transfer: client id {id}: received {bytes} bytes, relayed to {receivers} clients");
    }
}

#[derive(Debug, Default)]
struct Transfer;

impl Plugin for Transfer {
    const NAME: &'static CStr = c"transfer";
    const SUMMARY: &'static CStr = c"Broadcasting server for file transfers";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let room = FrameRoom::new(args.relay);
        args.server.run(false, None, move |client| {
            let room = room.clone();
            async move {
                let stream = client.ws.into_inner();
                ws_common::frame_relay::run_member(&room, client.id, stream, &LogTransfers).await
            }
        })
    }
}

declare_plugin!(Transfer);
