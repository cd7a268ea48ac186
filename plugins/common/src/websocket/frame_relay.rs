//! The `transfer` relay: like [`crate::relay`], every message from one member goes to every
//! other member, but frame by frame, as the fragments arrive, so a 1 GiB file passes through
//! in constant memory (the message-level relay would reassemble it first).
//!
//! Differences that follow from relaying fragments:
//! - A fragmented message holds the room's *lane* from its first frame to its last, so two
//!   senders' fragments never interleave at a receiver; the other senders wait.
//! - Receivers are fixed when a message starts; one that joins mid-message gets the next.
//! - Backpressure, not eviction: a receiver's queue is bounded in bytes and the sender waits
//!   for room. Only a receiver that makes no progress for `--stall-timeout` is closed (1008).
//! - A sender that disappears mid-message leaves its receivers with half a message, which
//!   WebSocket cannot abort: they are closed with 1011.
//!
//! permessage-deflate: every member that negotiates it agrees no context takeover both ways
//! (`transfer`'s policy), so each compressed message stands alone and its frames pass
//! through intact, RSV1 kept, to every receiver that agreed deflate with a window at least
//! the sender's. Receivers without deflate (or with a smaller window) get the message
//! inflated as its frames arrive, in frames of at most 256 KiB (see [`crate::deflate::inflate`]), under the
//! same backpressure: however much a frame inflates to, the relay holds no more of it than
//! the receivers' queues allow.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use event_listener::Event;
use futures_lite::FutureExt;
use futures_lite::io::{AsyncWriteExt, BufReader};

use crate::deflate::Agreement;
use crate::deflate::inflate::{InflatePos, MessageInflater};
use crate::frames::{self, FrameError, FrameReader, op};
use crate::net::Stream;

/// Flow-control limits of the frame relay.
#[derive(Debug, Clone, Copy, Args)]
pub struct FrameRelayArgs {
    /// Most bytes queued for one receiver; the sender waits while a receiver's queue is full
    #[arg(long = "max-queue-bytes", default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_bytes: usize,
    /// Seconds a receiver may make no progress before it is closed as stuck (1008)
    #[arg(long = "stall-timeout", default_value_t = 30, value_name = "S")]
    pub stall_timeout: u64,
    /// Largest frame accepted, in bytes (default: any; longer frames are relayed in pieces
    /// of 1 MiB, never held whole)
    #[arg(long = "max-frame-size", value_name = "BYTES")]
    pub max_frame: Option<usize>,
}

/// How much of a frame is read, and relayed, at a time: a sender that sends a file as one
/// frame (browsers, Node's `ws`, Python's `websockets` send every message so) is relayed as
/// a message in fragments of this size (RFC 6455 §5.4 lets an intermediary that knows the
/// extensions in use refragment; RSV1 stays on the first). `ws send`'s frames (256 KiB of
/// file) pass as they are, as `inject`'s 1 MiB fragments do.
const PIECE: usize = 1 << 20;

struct Member {
    id: u64,
    /// The window of compressed messages this member can take as they are: `Some` when it
    /// agreed deflate.
    inflates: Option<u8>,
    queue: RefCell<VecDeque<Vec<u8>>>,
    bytes: Cell<usize>,
    kicked: RefCell<Option<(u16, String)>>,
    /// Wakes the member's writer (new frames, or kicked).
    wake: Event,
    /// Wakes senders waiting for room in this member's queue.
    drained: Event,
}

impl Member {
    fn kick(&self, code: u16, reason: &str) {
        if self.kicked.borrow().is_none() {
            crate::warning!("closing client id {}: {reason}", self.id);
            *self.kicked.borrow_mut() = Some((code, reason.to_string()));
            self.queue.borrow_mut().clear();
            self.bytes.set(0);
            self.wake.notify(usize::MAX);
            self.drained.notify(usize::MAX);
        }
    }

    fn is_kicked(&self) -> bool {
        self.kicked.borrow().is_some()
    }

    fn push(&self, frame: Vec<u8>) {
        self.bytes.set(self.bytes.get() + frame.len());
        self.queue.borrow_mut().push_back(frame);
        self.wake.notify(usize::MAX);
    }
}

/// The members of one transfer room.
pub struct FrameRoom {
    members: RefCell<Vec<Rc<Member>>>,
    lane: smol::lock::Mutex<()>,
    limits: FrameRelayArgs,
}

impl std::fmt::Debug for FrameRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRoom").field("members", &self.members.borrow().len()).finish()
    }
}

impl FrameRoom {
    pub fn new(limits: FrameRelayArgs) -> Rc<FrameRoom> {
        Rc::new(FrameRoom { members: RefCell::new(Vec::new()), lane: smol::lock::Mutex::new(()), limits })
    }

    /// Queues `frame` for `m`, waiting while its queue is full; closes `m` if it stalls.
    async fn deliver(&self, m: &Member, frame: Vec<u8>) {
        let stall = Duration::from_secs(self.limits.stall_timeout.max(1));
        loop {
            if m.is_kicked() {
                return;
            }
            if m.bytes.get() + frame.len() <= self.limits.max_bytes || m.queue.borrow().is_empty() {
                m.push(frame);
                return;
            }
            let l = m.drained.listen();
            if m.bytes.get() + frame.len() <= self.limits.max_bytes || m.is_kicked() {
                continue;
            }
            let progressed = async {
                l.await;
                true
            }
            .or(async {
                crate::runtime::Timer::after(stall).await;
                false
            })
            .await;
            if !progressed {
                m.kick(1008, &format!("Slow consumer: no progress for {} s", stall.as_secs()));
            }
        }
    }
}

impl FrameRoom {
    /// Relays a whole message that did not come from a member (from another server through
    /// Redis) to every member, in fragments of at most 1 MiB, with the same backpressure.
    pub async fn inject(&self, binary: bool, payload: &[u8]) -> usize {
        const CHUNK: usize = 1 << 20;
        let _lane = self.lane.lock().await;
        let receivers: Vec<Rc<Member>> = self.members.borrow().iter().filter(|m| !m.is_kicked()).cloned().collect();
        let mut chunks = payload.chunks(CHUNK).peekable();
        let mut opcode = if binary { op::BINARY } else { op::TEXT };
        if payload.is_empty() {
            let frame = frames::encode(true, opcode, &[], None);
            for m in &receivers {
                self.deliver(m, frame.clone()).await;
            }
        }
        while let Some(chunk) = chunks.next() {
            let frame = frames::encode(chunks.peek().is_none(), opcode, chunk, None);
            for m in &receivers {
                self.deliver(m, frame.clone()).await;
            }
            opcode = op::CONTINUATION;
        }
        receivers.iter().filter(|m| !m.is_kicked()).count()
    }
}

/// What a member's session reports, for logging (and for publishing elsewhere).
pub trait FrameObserver {
    /// A whole relayed message: its size (inflated, unless it went compressed to every
    /// receiver) and how many receivers it went to.
    fn on_message(&self, id: u64, bytes: u64, receivers: usize);

    /// Messages up to this size are also handed whole to [`on_payload`](Self::on_payload);
    /// 0 (the default) keeps the relay frame by frame, in constant memory.
    fn payload_limit(&self) -> usize {
        0
    }

    /// A whole message of at most [`payload_limit`](Self::payload_limit) bytes.
    fn on_payload(&self, _id: u64, _binary: bool, _payload: &[u8]) {}
}

/// Runs one member of the room until it leaves; returns the close code and reason.
pub async fn run_member(
    room: &Rc<FrameRoom>,
    id: u64,
    stream: Stream,
    deflate: Option<Agreement>,
    observer: &impl FrameObserver,
) -> (u16, String) {
    let me = Rc::new(Member {
        id,
        inflates: deflate.map(|a| a.send_window_bits),
        queue: RefCell::new(VecDeque::new()),
        bytes: Cell::new(0),
        kicked: RefCell::new(None),
        wake: Event::new(),
        drained: Event::new(),
    });
    room.members.borrow_mut().push(me.clone());
    let (read_half, mut write_half) = futures_lite::io::split(stream);
    let max_frame = room.limits.max_frame.unwrap_or(usize::MAX);
    let mut reader = FrameReader::new(BufReader::with_capacity(64 * 1024, read_half), max_frame, true)
        .with_rsv1(deflate.is_some())
        .in_pieces(PIECE);

    let writer = async {
        loop {
            if let Some(k) = me.kicked.borrow().clone() {
                return Ended::Kicked(k);
            }
            let batch: Vec<Vec<u8>> = me.queue.borrow_mut().drain(..).collect();
            if batch.is_empty() {
                let l = me.wake.listen();
                if me.queue.borrow().is_empty() && !me.is_kicked() {
                    l.await;
                }
                continue;
            }
            me.bytes.set(0);
            me.drained.notify(usize::MAX);
            // A receiver that does not read blocks this write for good: a kick must end it
            // (it is how a stuck receiver is let go), not wait for a write that never ends.
            let write = async {
                for f in &batch {
                    write_half.write_all(f).await.map_err(Some)?;
                }
                write_half.flush().await.map_err(Some)
            };
            let kicked = async {
                loop {
                    let l = me.wake.listen();
                    if me.is_kicked() {
                        return Err(None);
                    }
                    l.await;
                }
            };
            match write.or(kicked).await {
                Ok(()) => {}
                Err(Some(_)) => return Ended::Gone,
                // Cut off mid-write: a close frame now could land inside a frame.
                Err(None) => return Ended::Cut(me.kicked.borrow().clone().unwrap_or_default()),
            }
            if batch.iter().any(|f| f.first().is_some_and(|b| b & 0x0f == op::CLOSE)) {
                return Ended::CloseSent;
            }
        }
    };

    // Receivers of the message this member is sending, while it is mid-message.
    let current: RefCell<Option<Vec<Rc<Member>>>> = RefCell::new(None);
    let reader_task = async {
        let mut guard = None;
        let mut msg_bytes: u64 = 0;
        let limit = observer.payload_limit();
        let mut whole: Option<Vec<u8>> = None;
        let mut binary = false;
        // The compressed message in progress: its inflater and who gets it inflated.
        let mut inflating: Option<Inflating> = None;
        loop {
            let frame = match reader.next().await {
                Ok(Some(f)) => f,
                Ok(None) => return Ended::Gone,
                Err(e) => return Ended::Failed(e),
            };
            if frame.rsv1 && (frame.is_control() || frame.opcode == op::CONTINUATION) {
                return Ended::Failed(FrameError::Protocol("RSV1 set on a control or continuation frame"));
            }
            match frame.opcode {
                op::PING => me.push(frames::encode(true, op::PONG, &frame.payload, None)),
                op::PONG => {}
                op::CLOSE => {
                    let (code, reason) = frames::parse_close(&frame.payload);
                    me.push(frames::encode(true, op::CLOSE, &frame.payload, None));
                    return Ended::Closed(code, reason);
                }
                opcode => {
                    let in_message = current.borrow().is_some();
                    let starting = match frames::check_order(opcode, in_message) {
                        Ok(starting) => starting,
                        Err(e) => return Ended::Failed(e),
                    };
                    if starting {
                        guard = Some(room.lane.lock().await);
                        let receivers: Vec<Rc<Member>> =
                            room.members.borrow().iter().filter(|m| m.id != id && !m.is_kicked()).cloned().collect();
                        *current.borrow_mut() = Some(receivers);
                        msg_bytes = 0;
                        binary = opcode == op::BINARY;
                        whole = (limit > 0).then(Vec::new);
                        inflating = frame.rsv1.then(|| {
                            // The sender's window: what it offered, 15 at most.
                            let bits = deflate.map_or(15, |a| a.receive_window_bits);
                            Inflating::new(opcode, bits)
                        });
                    }
                    let receivers = current.borrow().clone().unwrap_or_default();
                    let (direct, plain): (Vec<_>, Vec<_>) = match &inflating {
                        Some(inf) => receivers.iter().cloned().partition(|m| m.inflates.is_some_and(|w| w >= inf.bits)),
                        None => (receivers.clone(), Vec::new()),
                    };
                    let mut b0 = if frame.fin { 0x80 } else { 0 } | opcode;
                    if frame.rsv1 {
                        b0 |= 0x40;
                    }
                    let mut encoded = Vec::with_capacity(frame.payload.len() + frames::MAX_HEADER);
                    frames::push_header(&mut encoded, b0, frame.payload.len(), None);
                    encoded.extend_from_slice(&frame.payload);
                    for m in &direct {
                        room.deliver(m, encoded.clone()).await;
                    }
                    // The message as it is, for the plain receivers and the observer: the frame,
                    // or what it inflates to, a part at a time (delivered before the next is
                    // made, so a frame that inflates to gigabytes never sits in memory).
                    let inflate = inflating.as_ref().is_some_and(|_| !plain.is_empty() || whole.is_some());
                    if !inflate {
                        // As it came (uncompressed, or compressed to every receiver).
                        msg_bytes += frame.payload.len() as u64;
                    }
                    let mut pos = InflatePos::default();
                    // An uncompressed frame goes through the loop below only for the observer
                    // (every receiver got it above, as it is).
                    let mut as_is =
                        (inflating.is_none() && whole.is_some()).then(|| (frame.fin, frame.payload.clone()));
                    loop {
                        let (fin, part) = match (&mut inflating, as_is.take()) {
                            (None, Some(p)) => p,
                            (Some(inf), _) if inflate => match inf.z.next_part(&frame.payload, frame.fin, &mut pos) {
                                Ok(Some(p)) => p,
                                Ok(None) => break,
                                Err(e) => return Ended::Failed(e),
                            },
                            _ => break,
                        };
                        if inflate {
                            msg_bytes += part.len() as u64;
                        }
                        if let Some(w) = &mut whole {
                            if w.len() + part.len() <= limit {
                                w.extend_from_slice(&part);
                            } else {
                                crate::warning!("client id {id}: message over {limit} bytes is not passed on whole");
                                whole = None;
                            }
                        }
                        if !plain.is_empty() {
                            let opcode = inflating.as_mut().map_or(opcode, Inflating::next_opcode);
                            let encoded = frames::encode(fin, opcode, &part, None);
                            for m in &plain {
                                room.deliver(m, encoded.clone()).await;
                            }
                        }
                        if fin {
                            break;
                        }
                    }
                    if frame.fin {
                        inflating = None;
                        let n = receivers.iter().filter(|m| !m.is_kicked()).count();
                        *current.borrow_mut() = None;
                        guard = None;
                        observer.on_message(id, msg_bytes, n);
                        if let Some(w) = whole.take() {
                            observer.on_payload(id, binary, &w);
                        }
                    }
                }
            }
            let _ = &guard;
        }
    };

    let ended = reader_task.or(writer).await;
    room.members.borrow_mut().retain(|m| m.id != id);
    if let Some(receivers) = current.borrow_mut().take() {
        for m in receivers {
            m.kick(1011, "Relayed message interrupted: its sender disconnected");
        }
    }
    let mut w = write_half;
    match ended {
        Ended::Gone => (1006, "Abnormal closure".into()),
        Ended::CloseSent => (1000, "Normal closure".into()),
        Ended::Closed(code, reason) => {
            // Send what is queued, ending with our close reply.
            let frames: Vec<u8> = me.queue.borrow_mut().drain(..).flatten().collect();
            write_bounded(&mut w, &frames, Duration::from_secs(1)).await;
            (code, reason)
        }
        Ended::Failed(e) => {
            let code = e.close_code();
            if code != 1006 {
                let close = frames::encode(true, op::CLOSE, &frames::close_payload(code, &e.to_string()), None);
                write_bounded(&mut w, &close, Duration::from_secs(1)).await;
            }
            (code, e.to_string())
        }
        Ended::Cut((code, reason)) => (code, reason),
        Ended::Kicked((code, reason)) => {
            // The client is probably not reading: say why, but do not wait on it.
            let close = frames::encode(true, op::CLOSE, &frames::close_payload(code, &reason), None);
            write_bounded(&mut w, &close, Duration::from_millis(100)).await;
            (code, reason)
        }
    }
}

/// A compressed message being inflated for the receivers that cannot take it as it is.
struct Inflating {
    opcode: u8,
    /// The sender's window.
    bits: u8,
    z: MessageInflater,
    /// The first inflated frame went out (the rest are continuations).
    started: bool,
}

impl Inflating {
    fn new(opcode: u8, bits: u8) -> Self {
        Inflating { opcode, bits, z: MessageInflater::new(bits), started: false }
    }

    /// The opcode of the next inflated frame.
    fn next_opcode(&mut self) -> u8 {
        if std::mem::replace(&mut self.started, true) { op::CONTINUATION } else { self.opcode }
    }
}

async fn write_bounded(w: &mut (impl futures_lite::io::AsyncWrite + Unpin), bytes: &[u8], limit: Duration) {
    let _ = async {
        let _ = w.write_all(bytes).await;
        let _ = w.flush().await;
    }
    .or(async {
        crate::runtime::Timer::after(limit).await;
    })
    .await;
}

enum Ended {
    Gone,
    CloseSent,
    Closed(u16, String),
    Failed(FrameError),
    Kicked((u16, String)),
    /// Kicked while a write to it was blocked: closed without a close frame.
    Cut((u16, String)),
}
