//! The relay thread: plain (unencrypted) connection pairs are relayed by one thread with an
//! edge-triggered `mio` event loop, as nginx does, instead of on the plugin's async runtime.
//!
//! Why: with one connection and 64 small messages in flight, the async relay cost ~19 %
//! more CPU per relayed batch than nginx (`perf stat`, under `scripts/bench.sh proxy`) and
//! the machine's two cores were saturated, so that CPU was the gap (0.95× nginx). Per batch
//! the async path made 8 system calls to nginx's 3: `async-io`'s reactor re-arms a oneshot
//! registration per wait (`epoll_ctl`), and its `polling` crate adds `timerfd_settime`,
//! `epoll_ctl` (timer), `read` (eventfd) and `epoll_ctl` (eventfd) around every
//! `epoll_pwait`. Here a batch is `epoll_wait`, `recv`, `send`.
//!
//! Only the steady state lives here: data frames, and pings answered with the same rules as
//! the async pump (the shared [`Pump`] scans the frames; [`OutState`] keeps pongs out of a
//! data frame that is partly written). When a direction ends (a close passed, the peer left,
//! a broken frame, a failed write), the pair goes back to the async side with everything
//! it held ([`Back`]), and the ending (close handshake, our own close frames, the log)
//! happens there, once, for both paths. TLS pairs never come here.

use std::io::{Read, Write};
use std::sync::{Mutex, OnceLock};

use crate::splice::{Ended, OutState, Pump};

/// A pair handed to the thread.
pub struct Pair {
    pub client: std::net::TcpStream,
    pub upstream: std::net::TcpStream,
    pub c2u: Pump,
    pub u2c: Pump,
}

/// A pair handed back when one direction ended.
pub struct Back {
    pub client: std::net::TcpStream,
    pub upstream: std::net::TcpStream,
    pub c2u: Pump,
    pub u2c: Pump,
    /// What the thread had not yet written to each side, and where each stream stands.
    pub to_client: OutState,
    pub to_upstream: OutState,
    /// The direction that ended (true: the client's) and how.
    pub first: (bool, Ended),
}

struct Relay {
    waker: mio::Waker,
    inbox: Mutex<Vec<(Pair, smol::channel::Sender<Back>)>>,
}

static RELAY: OnceLock<Option<Relay>> = OnceLock::new();
const WAKE: mio::Token = mio::Token(usize::MAX);

/// Hands `pair` to the relay thread (started on first use); the receiver gets it back when
/// a direction ends. Gives the pair back at once if the thread cannot run.
pub fn hand_over(pair: Pair) -> Result<smol::channel::Receiver<Back>, Box<Pair>> {
    let relay = RELAY.get_or_init(|| {
        let start = || -> std::io::Result<Relay> {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKE)?;
            std::thread::Builder::new().name("ws-relay".into()).spawn(move || run(poll))?;
            Ok(Relay { waker, inbox: Mutex::new(Vec::new()) })
        };
        start().map_err(|e| ws_common::warning!("relay thread not started ({e}); relaying on the main thread")).ok()
    });
    let Some(relay) = relay else { return Err(Box::new(pair)) };
    let (tx, rx) = smol::channel::bounded(1);
    match relay.inbox.lock() {
        Ok(mut inbox) => inbox.push((pair, tx)),
        Err(_) => return Err(Box::new(pair)),
    }
    let _ = relay.waker.wake();
    Ok(rx)
}

/// One connection of a pair: its socket, the direction reading from it, and what goes to it.
struct Side {
    sock: mio::net::TcpStream,
    pump: Pump,
    out: OutState,
    /// Not known to be drained (edge-triggered: read until a short read or EAGAIN).
    readable: bool,
}

struct Conn {
    /// The client's side, then the upstream's.
    sides: [Side; 2],
    reply: smol::channel::Sender<Back>,
    ended: Option<(bool, Ended)>,
}

fn run(mut poll: mio::Poll) {
    let mut events = mio::Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut pongs = Vec::new();
    let mut touched = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            ws_common::error!("relay thread: {e}");
            return;
        }
        touched.clear();
        for ev in events.iter() {
            if ev.token() == WAKE {
                adopt(&poll, &mut conns, &mut touched);
                continue;
            }
            let (idx, side) = (ev.token().0 / 2, ev.token().0 % 2);
            if let Some(Some(c)) = conns.get_mut(idx) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.sides[side].readable = true;
                }
                touched.push(idx);
            }
        }
        for &idx in &touched {
            let Some(c) = conns[idx].as_mut() else { continue };
            for from in [0, 1] {
                if c.ended.is_none() {
                    relay(c, from, &mut pongs);
                }
            }
            // Pongs queued after the other direction's last flush: out now (a full socket
            // gets the rest when it reports writable).
            for side in c.sides.iter_mut() {
                let _ = flush(side);
            }
            if c.ended.is_some()
                && let Some(c) = conns[idx].take()
            {
                give_back(&poll, c);
            }
        }
    }
}

/// Registers the pairs waiting in the inbox.
fn adopt(poll: &mio::Poll, conns: &mut Vec<Option<Conn>>, touched: &mut Vec<usize>) {
    let Some(Some(relay)) = RELAY.get() else { return };
    let jobs = relay.inbox.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    for (pair, reply) in jobs {
        let idx = conns.iter().position(Option::is_none).unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        let side = |sock, pump| Side {
            sock: mio::net::TcpStream::from_std(sock),
            pump,
            out: OutState::default(),
            readable: true,
        };
        let mut c = Conn { sides: [side(pair.client, pair.c2u), side(pair.upstream, pair.u2c)], reply, ended: None };
        let mut registered = true;
        for (i, s) in c.sides.iter_mut().enumerate() {
            let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
            registered &= poll.registry().register(&mut s.sock, mio::Token(idx * 2 + i), interest).is_ok();
        }
        if !registered {
            c.ended = Some((false, Ended::Gone));
            give_back(poll, c);
            continue;
        }
        conns[idx] = Some(c);
        touched.push(idx);
    }
}

fn give_back(poll: &mio::Poll, c: Conn) {
    let Conn { sides: [mut client, mut upstream], reply, ended } = c;
    let _ = poll.registry().deregister(&mut client.sock);
    let _ = poll.registry().deregister(&mut upstream.sock);
    let back = Back {
        client: client.sock.into(),
        upstream: upstream.sock.into(),
        c2u: client.pump,
        u2c: upstream.pump,
        to_client: client.out,
        to_upstream: upstream.out,
        first: ended.unwrap_or((false, Ended::Gone)),
    };
    let _ = reply.try_send(back);
}

/// Writes what is pending for `side`; false if the connection failed. Stops (true) when
/// the socket is full.
fn flush(side: &mut Side) -> bool {
    while !side.out.pending.is_empty() {
        match side.sock.write(&side.out.pending) {
            Ok(n) => {
                side.out.pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Queues `bytes` for `side`, writing straight away when nothing is pending before them.
fn send(side: &mut Side, bytes: &[u8]) {
    if side.out.pending.is_empty() {
        match side.sock.write(bytes) {
            Ok(n) => side.out.pending.extend_from_slice(&bytes[n..]),
            // Errors show at the next flush.
            Err(_) => side.out.pending.extend_from_slice(bytes),
        }
    } else {
        side.out.pending.extend_from_slice(bytes);
    }
}

/// Relays what can go from side `from` to the other, until the source is drained, the
/// destination is full, or the direction ends.
fn relay(c: &mut Conn, from: usize, pongs: &mut Vec<Vec<u8>>) {
    let from_client = from == 0;
    let [client, upstream] = &mut c.sides;
    let (src, dst) = if from_client { (client, upstream) } else { (upstream, client) };
    loop {
        // Backpressure: nothing more is read while the destination has not taken the last.
        if !flush(dst) {
            c.ended = Some((from_client, Ended::WriteGone));
            return;
        }
        if !dst.out.pending.is_empty() || !src.readable {
            return;
        }
        let space = src.pump.space().len();
        let n = match src.sock.read(src.pump.space()) {
            Ok(0) => {
                c.ended = Some((from_client, Ended::Gone));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                src.readable = false;
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.ended = Some((from_client, Ended::Gone));
                return;
            }
        };
        // A short read drained the socket; the next arrival is a new edge.
        src.readable = n == space;
        let batch = src.pump.batch(n, pongs);
        let mid_frame = src.pump.mid_frame();
        send(dst, src.pump.forwardable(&batch));
        if let Some(waiting) = dst.out.forwarded(mid_frame) {
            send(dst, &waiting);
        }
        if let Some(e) = batch.failed {
            c.ended = Some((from_client, Ended::Failed(e)));
            return;
        }
        src.pump.consume(&batch);
        if !pongs.is_empty() {
            if let Some(bytes) = src.out.pongs_now(pongs) {
                send(src, &bytes);
            }
            pongs.clear();
        }
        if let Some((code, reason)) = batch.close {
            c.ended = Some((from_client, Ended::Closed(code, reason)));
            return;
        }
    }
}
