//! A room: every message from one member goes to every *other* member, same type, in order
//! per sender — the relay behind `broadcast_server` and `transfer`.
//!
//! The reference sleeps at least 500 ms per receiver per message. Here nothing waits on a
//! receiver: each member has its own bounded outgoing queue (messages and bytes), drained by
//! its own writer. A member whose queue is full is a slow or stuck consumer: it is closed
//! with 1008 and a logged reason, and it never slows the others. Memory is bounded by
//! `members × queue limit`, whatever the clients do; payloads are shared, not copied, between
//! the queues (tungstenite messages hold reference-counted `Bytes`).
//!
//! With permessage-deflate, a message is compressed **once** for all the members that agreed
//! no context takeover on the server's side (`broadcast_server` asks it of every client):
//! they get the same compressed frame, shared like any payload, instead of one compression
//! each.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use event_listener::Event;
use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};

use crate::ws::{Message, WsStream, close_frame, close_frame_for, close_parts};

/// Per-member queue limits.
#[derive(Debug, Clone, Copy, Args)]
pub struct QueueArgs {
    /// Most messages queued for one client before it is closed as a slow consumer (1008)
    #[arg(long = "max-queue-messages", default_value_t = 4096, value_name = "N")]
    pub max_messages: usize,
    /// Most bytes queued for one client before it is closed as a slow consumer (1008)
    #[arg(long = "max-queue-bytes", default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_bytes: usize,
}

struct Member {
    id: u64,
    /// The window a message compressed once may use for this member: `Some` when it agreed
    /// deflate without server context takeover.
    once: Option<u8>,
    queue: RefCell<VecDeque<Message>>,
    bytes: Cell<usize>,
    kicked: RefCell<Option<(u16, String)>>,
    wake: Event,
}

impl Member {
    fn kick(&self, code: u16, reason: String) {
        if self.kicked.borrow().is_none() {
            *self.kicked.borrow_mut() = Some((code, reason));
            self.queue.borrow_mut().clear();
            self.bytes.set(0);
            self.wake.notify(usize::MAX);
        }
    }

    async fn wait_kicked(&self) -> (u16, String) {
        loop {
            if let Some(k) = self.kicked.borrow().clone() {
                return k;
            }
            let l = self.wake.listen();
            if let Some(k) = self.kicked.borrow().clone() {
                return k;
            }
            l.await;
        }
    }

    /// Waits for queued messages and takes them all.
    async fn take(&self) -> Vec<Message> {
        loop {
            if !self.queue.borrow().is_empty() {
                self.bytes.set(0);
                return self.queue.borrow_mut().drain(..).collect();
            }
            let l = self.wake.listen();
            if !self.queue.borrow().is_empty() {
                continue;
            }
            l.await;
        }
    }
}

/// The members of one room.
pub struct Room {
    members: RefCell<Vec<Rc<Member>>>,
    limits: QueueArgs,
    relayed: Cell<u64>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("members", &self.members.borrow().len()).finish()
    }
}

impl Room {
    pub fn new(limits: QueueArgs) -> Rc<Room> {
        Rc::new(Room { members: RefCell::new(Vec::new()), limits, relayed: Cell::new(0) })
    }

    /// How many clients are in the room.
    pub fn len(&self) -> usize {
        self.members.borrow().len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn join(&self, id: u64, once: Option<u8>) -> Rc<Member> {
        let m = Rc::new(Member {
            id,
            once,
            queue: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            kicked: RefCell::new(None),
            wake: Event::new(),
        });
        self.members.borrow_mut().push(m.clone());
        m
    }

    fn leave(&self, id: u64) {
        self.members.borrow_mut().retain(|m| m.id != id);
    }

    /// Queues `msg` for every member but `from`; returns how many got it.
    pub fn broadcast(&self, from: u64, msg: &Message) -> usize {
        let mut delivered = 0;
        // The message compressed once per window size in use, made at first need.
        let mut compressed: Vec<(u8, Message)> = Vec::new();
        for m in self.members.borrow().iter() {
            if m.id == from || m.kicked.borrow().is_some() {
                continue;
            }
            let out = match m.once {
                Some(bits) => match compressed.iter().find(|(b, _)| *b == bits) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = precompressed(msg, bits).unwrap_or_else(|| msg.clone());
                        compressed.push((bits, c.clone()));
                        c
                    }
                },
                None => msg.clone(),
            };
            let size = out.len();
            let q_len = m.queue.borrow().len();
            if q_len + 1 > self.limits.max_messages || m.bytes.get() + size > self.limits.max_bytes {
                let reason = format!("Slow consumer: outgoing queue full ({q_len} messages, {} bytes)", m.bytes.get());
                crate::warning!("closing client id {}: {reason}", m.id);
                m.kick(1008, reason);
                continue;
            }
            m.queue.borrow_mut().push_back(out);
            m.bytes.set(m.bytes.get() + size);
            m.wake.notify(usize::MAX);
            delivered += 1;
        }
        self.relayed.set(self.relayed.get() + delivered as u64);
        delivered
    }

    /// Messages handed to members so far.
    pub fn relayed(&self) -> u64 {
        self.relayed.get()
    }
}

/// A data message as one frame compressed on its own, RSV1 set: the deflate layer beneath
/// tungstenite sends such frames as they are (see [`crate::deflate::io`]).
fn precompressed(msg: &Message, window_bits: u8) -> Option<Message> {
    use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use async_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
    let (opcode, data) = match msg {
        Message::Text(t) => (Data::Text, t.as_bytes()),
        Message::Binary(b) => (Data::Binary, &b[..]),
        _ => return None,
    };
    let body = crate::deflate::compress_message(data, window_bits);
    let header = FrameHeader { rsv1: true, opcode: OpCode::Data(opcode), ..FrameHeader::default() };
    Some(Message::Frame(Frame::from_payload(header, body.into())))
}

/// What happened to one message a member sent, for the caller's logging.
pub trait Observer {
    fn on_message(&self, id: u64, msg: &Message, delivered: usize);
}

impl Observer for () {
    fn on_message(&self, _: u64, _: &Message, _: usize) {}
}

/// Runs one member until it leaves; returns the close code and reason.
pub async fn run_member(room: &Rc<Room>, id: u64, ws: WsStream, observer: &impl Observer) -> (u16, String) {
    let once = ws.get_ref().deflate().map(|d| d.agreement()).filter(|a| a.send_no_context_takeover);
    let member = room.join(id, once.map(|a| a.send_window_bits.max(9)));
    let (mut sink, mut stream) = ws.split();
    let writer = async {
        loop {
            let batch = member.take().await;
            for m in batch {
                if sink.feed(m).await.is_err() {
                    return Ended::Gone;
                }
            }
            if sink.flush().await.is_err() {
                return Ended::Gone;
            }
        }
    };
    let reader = async {
        loop {
            match stream.next().await {
                None => return Ended::Gone,
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let delivered = room.broadcast(id, &m);
                    observer.on_message(id, &m, delivered);
                }
                Some(Ok(Message::Close(frame))) => return Ended::Closed(close_parts(frame.as_ref())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Failed(e),
            }
        }
    };
    let kicked = async { Ended::Kicked(member.wait_kicked().await) };
    let ended = writer.or(reader).or(kicked).await;
    room.leave(id);
    let bounded = |d| async move {
        crate::runtime::Timer::after(d).await;
        Ok(())
    };
    match ended {
        Ended::Gone => (1006, "Abnormal closure".into()),
        Ended::Closed(c) => {
            // tungstenite answers the close on the next write or flush.
            let _ = sink.flush().or(bounded(Duration::from_secs(1))).await;
            c
        }
        Ended::Failed(e) => match close_frame_for(&e) {
            Some(frame) => {
                let code = u16::from(frame.code);
                let _ = sink.close(Some(frame)).or(bounded(Duration::from_secs(1))).await;
                (code, e.to_string())
            }
            None => (1006, e.to_string()),
        },
        Ended::Kicked((code, reason)) => {
            // The client is not reading; try to say why, but do not wait on it.
            let _ = sink.close(Some(close_frame(code, &reason))).or(bounded(Duration::from_millis(100))).await;
            (code, reason)
        }
    }
}

enum Ended {
    Gone,
    Closed((u16, String)),
    Failed(async_tungstenite::tungstenite::Error),
    Kicked((u16, String)),
}
