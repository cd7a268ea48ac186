//! `ws transfer`: the relay between `ws send` and `ws receive`, a broadcast server that
//! forwards frames as they arrive (`ws_common::frame_relay`), so any file size passes through
//! in constant memory, with backpressure from the slowest receiver.

use std::ffi::{CStr, OsString};

use clap::Parser;
use ws_common::frame_relay::{FrameObserver, FrameRelayArgs, FrameRoom};
use ws_common::info;
use ws_common::net::ListenArgs;
use ws_common::server::LimitArgs;
use ws_common::tls::TlsArgs;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// File-transfer relay
#[derive(Debug, Parser)]
#[command(
    name = "ws transfer",
    about = "File-transfer relay: forwards every message to every other client, frame by frame"
)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    relay: FrameRelayArgs,
    /// Print only warnings and errors
    #[arg(short = 'q')]
    quiet: bool,
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
        ws_common::log::set_verbosity(false, args.quiet);
        let tls = args.tls.server_config(&[])?;
        let room = FrameRoom::new(args.relay);
        ws_common::runtime::block_on(|ex| async move {
            ws_common::server::serve(&ex, &args.listen, tls, &args.limits, None, move |client| {
                let room = room.clone();
                async move {
                    let stream = client.ws.into_inner();
                    ws_common::frame_relay::run_member(&room, client.id, stream, &LogTransfers).await
                }
            })
            .await?;
            Ok(())
        })
    }
}

declare_plugin!(Transfer);
