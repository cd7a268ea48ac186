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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use event_listener::Event;
use futures_lite::FutureExt;
use futures_lite::io::{AsyncWriteExt, BufReader};

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
    /// Largest frame accepted, in bytes
    #[arg(long = "max-frame-size", default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_frame: usize,
}

struct Member {
    id: u64,
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
                smol::Timer::after(stall).await;
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
    /// A whole relayed message: its size and how many receivers it went to.
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
pub async fn run_member(room: &Rc<FrameRoom>, id: u64, stream: Stream, observer: &impl FrameObserver) -> (u16, String) {
    let me = Rc::new(Member {
        id,
        queue: RefCell::new(VecDeque::new()),
        bytes: Cell::new(0),
        kicked: RefCell::new(None),
        wake: Event::new(),
        drained: Event::new(),
    });
    room.members.borrow_mut().push(me.clone());
    let (read_half, mut write_half) = futures_lite::io::split(stream);
    let mut reader = FrameReader::new(BufReader::with_capacity(64 * 1024, read_half), room.limits.max_frame, true);

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
        loop {
            let frame = match reader.next().await {
                Ok(Some(f)) => f,
                Ok(None) => return Ended::Gone,
                Err(e) => return Ended::Failed(e),
            };
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
                    }
                    msg_bytes += frame.payload.len() as u64;
                    if let Some(w) = &mut whole {
                        if w.len() + frame.payload.len() <= limit {
                            w.extend_from_slice(&frame.payload);
                        } else {
                            crate::warning!("client id {id}: message over {limit} bytes is not passed on whole");
                            whole = None;
                        }
                    }
                    let encoded = frames::encode(frame.fin, opcode, &frame.payload, None);
                    let receivers = current.borrow().clone().unwrap_or_default();
                    for m in &receivers {
                        room.deliver(m, encoded.clone()).await;
                    }
                    if frame.fin {
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

async fn write_bounded(w: &mut (impl futures_lite::io::AsyncWrite + Unpin), bytes: &[u8], limit: Duration) {
    let _ = async {
        let _ = w.write_all(bytes).await;
        let _ = w.flush().await;
    }
    .or(async {
        smol::Timer::after(limit).await;
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
