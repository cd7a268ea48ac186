//! `ws transfer`: the relay between `ws send` and `ws receive`, a broadcast server that
//! forwards frames as they arrive (`ws_common::frame_relay`), so any file size passes through
//! in constant memory, with backpressure from the slowest receiver.
//!
//! Rooms come from the URL path as in `broadcast_server` (`/room/NAME`), and with `--redis`
//! several relays share them: whole messages up to `--redis-queue-bytes` are published to
//! the room's channel, and messages from other relays are injected into the local room.

use std::cell::Cell;
use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use futures_lite::FutureExt;
use ws_common::bus::{Bus, BusMessage, ByteQueue, RedisArgs, Rooms};
use ws_common::deflate::ServerPolicy;
use ws_common::frame_relay::{FrameObserver, FrameRelayArgs, FrameRoom};
use ws_common::server::ServerArgs;
use ws_common::{info, warning};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// File-transfer relay
#[derive(Debug, Parser)]
#[command(
    name = "ws transfer",
    about = "File-transfer relay: forwards every message to every other client, frame by frame",
    after_help = "permessage-deflate is accepted with no context takeover either way (each message is \
                  compressed on its own, so no compressor stays allocated per client and compressed \
                  frames are relayed as they are); receivers without it get messages inflated."
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    relay: FrameRelayArgs,
    #[command(flatten)]
    redis: RedisArgs,
}

struct LogTransfers {
    bus: Option<Rc<Bus>>,
    channel: Rc<str>,
    limit: usize,
}

impl FrameObserver for LogTransfers {
    fn on_message(&self, id: u64, bytes: u64, receivers: usize) {
        info!("ws_transfer: client id {id}: received {bytes} bytes, relayed to {receivers} clients");
    }

    fn payload_limit(&self) -> usize {
        if self.bus.is_some() { self.limit } else { 0 }
    }

    fn on_payload(&self, _id: u64, binary: bool, payload: &[u8]) {
        if let Some(bus) = &self.bus {
            bus.publish(&self.channel, payload, binary);
        }
    }
}

#[derive(Debug, Default)]
struct Transfer;

impl Plugin for Transfer {
    const NAME: &'static CStr = c"transfer";
    const SUMMARY: &'static CStr = c"Broadcasting server for file transfers";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        // Every message compressed on its own, both ways, so that a sender's compressed
        // frames can be relayed as they are (see frame_relay).
        args.server.deflate = Some(ServerPolicy { server_no_context_takeover: true, echo_frames: true });
        args.server.run_with(false, None, async || {
            let relay = args.relay;
            let rooms = Rooms::connect(&args.redis, move || FrameRoom::new(relay)).await?;
            let limit = args.redis.queue_bytes;
            let from_bus = rooms.clone();
            let background = async move {
                // Messages from other servers wait here for their room's lane and receivers,
                // so the Redis link is never held up (its own queue is unbounded) and memory
                // stays bounded: over the limit, they are dropped and counted.
                let inbox = ByteQueue::new(limit);
                let dropped = Cell::new(0u64);
                let take = from_bus.relay_from_bus(async |room: Rc<FrameRoom>, m: BusMessage| {
                    let size = m.payload.len();
                    if !inbox.push_with(size, || (room, m)) {
                        dropped.set(dropped.get() + 1);
                        // Logged at the 1st, 2nd, 4th, 8th… drop, not once per message.
                        if dropped.get().is_power_of_two() {
                            warning!(
                                "ws_transfer: receivers are {} bytes behind messages from other servers; dropped one of {size} bytes ({} so far)",
                                inbox.bytes(),
                                dropped.get()
                            );
                        }
                    }
                });
                let relay = async {
                    loop {
                        let ((room, m), size) = inbox.pop().await;
                        inbox.release(size);
                        let n = room.inject(m.binary, &m.payload).await;
                        info!("ws_transfer: {} bytes from another server relayed to {n} clients", m.payload.len());
                    }
                };
                take.or(relay).await;
            };
            let handle = move |client: ws_common::server::Client| {
                let rooms = rooms.clone();
                async move {
                    let (channel, room) = rooms.enter(&client.handshake.uri).await;
                    let log = LogTransfers { bus: rooms.bus().cloned(), channel: channel.clone(), limit };
                    // Frames are relayed as they are on the socket (see ServerPolicy::echo_frames).
                    let Some(stream) = client.ws.into_inner().into_plain() else {
                        return (1011, "a deflate layer on a relayed socket".into());
                    };
                    let deflate = client.handshake.deflate;
                    let ended = ws_common::frame_relay::run_member(&room, client.id, stream, deflate, &log).await;
                    rooms.exit(&channel);
                    ended
                }
            };
            Ok((handle, background))
        })
    }
}

declare_plugin!(Transfer);
