//! `ws transfer`: the relay between `ws send` and `ws receive`, a broadcast server that
//! forwards frames as they arrive (`ws_common::frame_relay`), so any file size passes through
//! in constant memory, with backpressure from the slowest receiver.
//!
//! Rooms come from the URL path as in `broadcast_server` (`/room/NAME`), and with `--redis`
//! several relays share them: whole messages up to `--redis-queue-bytes` are published to
//! the room's channel, and messages from other relays are injected into the local room.
//!
//! With `--threads N` (default: one per core) each room is served whole by one worker, the
//! one [`owner`] names: a client accepted by another worker is handed to it after its
//! handshake (socket and TLS session, `ws_common::net::Detached`), and the accepting worker
//! only waits for it to end, to log the close and count the connection as before. Frames
//! then stream from sender to receivers on one loop, with the same backpressure as with one
//! worker; relaying them between workers instead would add a copy and a cross-thread queue
//! per frame, and backpressure across that queue. With `--redis` the process keeps one link
//! (worker 0's, through `ws_common::hub`), as broadcast_server does.

use std::cell::Cell;
use std::ffi::{CStr, OsString};
use std::rc::Rc;
use std::sync::Arc;

use clap::Parser;
use futures_lite::FutureExt;
use ws_common::bus::{BusMessage, ByteQueue, RedisArgs, Rooms, channel_for_path};
use ws_common::deflate::{Agreement, ServerPolicy};
use ws_common::frame_relay::{FrameObserver, FrameRelayArgs, FrameRoom};
use ws_common::hub::Hub;
use ws_common::net::{Detached, Stream};
use ws_common::server::{Client, ServerArgs, Worker};
use ws_common::workers::{Inboxes, WorkerArgs, owner};
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
    #[command(flatten)]
    workers: WorkerArgs,
}

/// Logs each relayed message and, with Redis, hands messages up to `limit` bytes to the
/// room's clients on other servers.
struct LogTransfers {
    rooms: Rc<Rooms<FrameRoom>>,
    channel: Rc<str>,
    limit: usize,
}

impl FrameObserver for LogTransfers {
    fn on_message(&self, id: u64, bytes: u64, receivers: usize) {
        info!("ws_transfer: client id {id}: received {bytes} bytes, relayed to {receivers} clients");
    }

    fn payload_limit(&self) -> usize {
        self.limit
    }

    fn on_payload(&self, _id: u64, binary: bool, payload: &[u8]) {
        self.rooms.publish(&self.channel, bytes::Bytes::copy_from_slice(payload), binary);
    }
}

/// A client on its way to the worker that owns its room.
struct Moved {
    conn: Detached,
    id: u64,
    uri: String,
    deflate: Option<Agreement>,
    /// How it ended, for the worker that accepted it.
    done: smol::channel::Sender<(u16, String)>,
}

/// What a worker serves its rooms' clients with.
struct Relay {
    rooms: Rc<Rooms<FrameRoom>>,
    /// Messages up to this size are published to Redis (0: no Redis).
    limit: usize,
}

impl Relay {
    /// Serves one client of a room this worker owns, until it leaves.
    async fn member(&self, id: u64, uri: &str, stream: Stream, deflate: Option<Agreement>) -> (u16, String) {
        let (channel, room) = self.rooms.enter(uri).await;
        let log = LogTransfers { rooms: self.rooms.clone(), channel: channel.clone(), limit: self.limit };
        let ended = ws_common::frame_relay::run_member(&room, id, stream, deflate, &log).await;
        self.rooms.exit(&channel);
        ended
    }

    /// Relays messages from other servers (through Redis) into this worker's rooms.
    async fn relay_other_servers(&self, queue_bytes: usize) {
        // Messages from other servers wait here for their room's lane and receivers,
        // so the Redis link is never held up (its own queue is unbounded) and memory
        // stays bounded: over the limit, they are dropped and counted.
        let inbox = ByteQueue::new(queue_bytes);
        let dropped = Cell::new(0u64);
        let take = self.rooms.relay_from_bus(async |room: Rc<FrameRoom>, m: BusMessage| {
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
        let workers = args.workers.count();
        let hub = Hub::for_server(workers, &args.redis)?;
        let inboxes: Arc<Inboxes<Moved>> = Inboxes::new(workers);
        let limit = if args.redis.url.is_some() { args.redis.queue_bytes } else { 0 };
        let (relay_args, redis) = (args.relay, &args.redis);
        // `tls`: a moved TLS connection is rebuilt on its new worker with the server's configuration.
        args.server.run_workers_with(false, workers, |me, tls| {
            let (hub, inboxes) = (hub.link(me), inboxes.clone());
            async move {
                let rooms = Rooms::for_worker(redis, hub, move || FrameRoom::new(relay_args)).await?;
                let relay = Rc::new(Relay { rooms, limit });
                let here = relay.clone();
                let arrivals = inboxes.clone();
                let background = async move {
                    let take_over = async {
                        loop {
                            let m = arrivals.recv(me).await;
                            let (relay, tls) = (here.clone(), tls.clone());
                            ws_common::runtime::spawn(async move {
                                let ended = match m.conn.attach(tls.as_ref()).await {
                                    Ok(stream) => relay.member(m.id, &m.uri, stream, m.deflate).await,
                                    Err(e) => (1011, format!("cannot take the connection over: {e}")),
                                };
                                let _ = m.done.try_send(ended);
                            })
                            .detach();
                        }
                    };
                    here.relay_other_servers(redis.queue_bytes).or(take_over).await;
                };
                let default = redis.channel.clone();
                let handle = move |client: Client| {
                    let (relay, inboxes, default) = (relay.clone(), inboxes.clone(), default.clone());
                    async move {
                        let Client { ws, handshake, id, .. } = client;
                        // Frames are relayed as they are on the socket (see ServerPolicy::echo_frames).
                        let Some(stream) = ws.into_inner().into_plain() else {
                            return (1011, "a deflate layer on a relayed socket".into());
                        };
                        let channel = channel_for_path(&default, &handshake.uri);
                        let to = owner(&channel, workers);
                        if to == me {
                            return relay.member(id, &handshake.uri, stream, handshake.deflate).await;
                        }
                        let Ok(conn) = stream.detach() else {
                            return (1011, "cannot move the connection to its room's worker".into());
                        };
                        let (done, ended) = smol::channel::bounded(1);
                        info!("client id {id}: served by worker {to}, which holds room {channel}");
                        let moved = Moved { conn, id, uri: handshake.uri, deflate: handshake.deflate, done };
                        if inboxes.send(to, moved).is_err() {
                            return (1011, "no worker for the room".into());
                        }
                        ended.recv().await.unwrap_or_else(|_| (1011, "the room's worker stopped".into()))
                    }
                };
                Ok(Worker { gate: None, prepare: None, handle, background })
            }
        })
    }
}

declare_plugin!(Transfer);
