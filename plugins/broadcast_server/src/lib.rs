//! `ws broadcast_server`: every text or binary message from one client goes to every other
//! connected client, same type, in order per sender. No sleeps: a slow or stuck client is
//! closed with 1008 when its bounded queue fills, and never slows the others (the relay is
//! `ws_common::relay`, shared with `transfer`).

use std::ffi::{CStr, OsString};

use clap::Parser;
use ws_common::debug;
use ws_common::relay::{Observer, QueueArgs, Room};
use ws_common::server::ServerArgs;
use ws_common::ws::Message;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Broadcasting server
#[derive(Debug, Parser)]
#[command(name = "ws broadcast_server", about = "Broadcasting server: relays every message to every other client")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    queue: QueueArgs,
    /// Also log every message relayed
    #[arg(short = 'v')]
    verbose: bool,
}

struct LogMessages;

impl Observer for LogMessages {
    fn on_message(&self, id: u64, msg: &Message, delivered: usize) {
        debug!("client id {id}: received {} bytes, relayed to {delivered} clients", msg.len());
    }
}

#[derive(Debug, Default)]
struct BroadcastServer;

impl Plugin for BroadcastServer {
    const NAME: &'static CStr = c"broadcast_server";
    const SUMMARY: &'static CStr = c"Broadcasting server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let room = Room::new(args.queue);
        args.server.run(args.verbose, None, move |client| {
            let room = room.clone();
            async move { ws_common::relay::run_member(&room, client.id, client.ws, &LogMessages).await }
        })
    }
}

declare_plugin!(BroadcastServer);
