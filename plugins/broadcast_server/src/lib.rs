//! `ws broadcast_server`: every text or binary message from one client goes to every other
//! client of its room, same type, in order per sender. No sleeps: a slow or stuck client is
//! closed with 1008 when its bounded queue fills, and never slows the others (the relay is
//! `ws_common::relay`, shared with `chat` clients' server side).
//!
//! Rooms: clients on `/room/NAME` share room NAME; every other path is the default room.
//! With `--threads N` (default: one per core) N workers share the rooms (`ws_common::hub`);
//! with `--redis`, several servers share them through Redis pub/sub (`ws_common::bus`, one
//! link per process), so a load balancer can spread clients over them.

use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use ws_common::bus::{BusMessage, RedisArgs, Rooms};
use ws_common::debug;
use ws_common::deflate::ServerPolicy;
use ws_common::hub::Hub;
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
    #[command(flatten)]
    workers: ws_common::workers::WorkerArgs,
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

/// Logs each relayed message and hands it to the room's clients elsewhere (other workers,
/// other servers through Redis).
struct Relay {
    rooms: Rc<Rooms<Room>>,
    channel: Rc<str>,
}

impl Observer for Relay {
    fn on_message(&self, id: u64, msg: &Message, delivered: usize) {
        debug!("client id {id}: received {} bytes, relayed to {delivered} clients", msg.len());
        if self.rooms.shared() {
            match msg {
                Message::Text(t) => self.rooms.publish(&self.channel, t.clone().into(), false),
                Message::Binary(b) => self.rooms.publish(&self.channel, b.clone(), true),
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
        let workers = args.workers.count();
        let hub = Hub::for_server(workers, &args.redis)?;
        let (queue, redis) = (args.queue, &args.redis);
        args.server.run_workers_with(args.verbose, workers, |i, _| {
            let hub = hub.link(i);
            async move {
                let rooms = Rooms::for_worker(redis, hub, move || Room::new(queue)).await?;
                let from_elsewhere = rooms.clone();
                let background = async move {
                    from_elsewhere
                        .relay_from_bus(async |room: Rc<Room>, m| _ = room.broadcast(FROM_BUS, &to_message(m)))
                        .await;
                };
                let handle = move |client: ws_common::server::Client| {
                    let rooms = rooms.clone();
                    async move {
                        let (channel, room) = rooms.enter(&client.handshake.uri).await;
                        let relay = Relay { rooms: rooms.clone(), channel: channel.clone() };
                        let ended = ws_common::relay::run_member(&room, client.id, client.ws, &relay).await;
                        rooms.exit(&channel);
                        ended
                    }
                };
                Ok(ws_common::server::Worker { gate: None, prepare: None, handle, background })
            }
        })
    }
}

declare_plugin!(BroadcastServer);
