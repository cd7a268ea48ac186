//! `ws broadcast_server`: every text or binary message from one client goes to every other
//! client of its room, same type, in order per sender. No sleeps: a slow or stuck client is
//! closed with 1008 when its bounded queue fills, and never slows the others (the relay is
//! `ws_common::relay`, shared with `chat` clients' server side).
//!
//! Rooms: clients on `/room/NAME` share room NAME; every other path is the default room.
//! With `--redis`, several servers share their rooms through Redis pub/sub
//! (`ws_common::bus`), so a load balancer can spread clients over them.

use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use ws_common::bus::{Bus, BusMessage, RedisArgs, Rooms};
use ws_common::debug;
use ws_common::deflate::ServerPolicy;
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
    #[command(flatten)]
    redis: RedisArgs,
    /// Also log every message relayed
    #[arg(short = 'v')]
    verbose: bool,
    /// Decline permessage-deflate. It is accepted by default with server_no_context_takeover:
    /// each message is compressed on its own, so no compressor stays allocated per client
    #[arg(short = 'x')]
    no_deflate: bool,
}

/// The sender id of messages that came from another server.
const FROM_BUS: u64 = u64::MAX;

/// Logs each relayed message and, when scaling out, publishes it for the other servers.
struct Relay {
    bus: Option<Rc<Bus>>,
    channel: Rc<str>,
}

impl Observer for Relay {
    fn on_message(&self, id: u64, msg: &Message, delivered: usize) {
        debug!("client id {id}: received {} bytes, relayed to {delivered} clients", msg.len());
        if let Some(bus) = &self.bus {
            match msg {
                Message::Text(t) => bus.publish(&self.channel, t.as_bytes(), false),
                Message::Binary(b) => bus.publish(&self.channel, b, true),
                _ => {}
            }
        }
    }
}

fn to_message(m: BusMessage) -> Message {
    if !m.binary {
        if let Ok(text) = m.payload.clone().try_into() {
            return Message::Text(text);
        }
    }
    Message::Binary(m.payload)
}

#[derive(Debug, Default)]
struct BroadcastServer;

impl Plugin for BroadcastServer {
    const NAME: &'static CStr = c"broadcast_server";
    const SUMMARY: &'static CStr = c"Broadcasting server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        args.server.deflate =
            (!args.no_deflate).then_some(ServerPolicy { server_no_context_takeover: true, ..ServerPolicy::default() });
        args.server.run_with(args.verbose, None, async || {
            let queue = args.queue;
            let rooms = Rooms::connect(&args.redis, move || Room::new(queue)).await?;
            let from_bus = rooms.clone();
            let background = async move {
                from_bus.relay_from_bus(async |room: Rc<Room>, m| _ = room.broadcast(FROM_BUS, &to_message(m))).await;
            };
            let handle = move |client: ws_common::server::Client| {
                let rooms = rooms.clone();
                async move {
                    let (channel, room) = rooms.enter(&client.handshake.uri).await;
                    let relay = Relay { bus: rooms.bus().cloned(), channel: channel.clone() };
                    let ended = ws_common::relay::run_member(&room, client.id, client.ws, &relay).await;
                    rooms.exit(&channel);
                    ended
                }
            };
            Ok((handle, background))
        })
    }
}

declare_plugin!(BroadcastServer);
