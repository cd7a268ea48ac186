//! `ws bench URL`: a WebSocket load client, because no ready-made one here is fast enough
//! to saturate a Rust server on two cores (the Node and Python ones top out near 50k round
//! trips/s).
//!
//! Every reply is checked against what was sent (content, type and order), and any mismatch
//! fails the run with a non-zero exit, so a fast but wrong server never scores.
//!
//! Modes:
//! - `echo` (default): N connections, each keeping W messages in flight; round trips/s,
//!   throughput and latency percentiles (HDR histogram).
//! - `fanout`: one sender and N receivers through a broadcast server; delivered messages/s.
//!   The sender stays at most W messages ahead of the slowest receiver.
//! - `idle`: opens N connections and holds them for the duration; reports how many opened.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{CStr, OsString};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use ws_common::deflate::io::Counters;
use ws_common::tls::TlsArgs;
use ws_common::ws::{ClientOptions, Message, WsStream, connect};
use ws_plugin_api::{Error, Plugin, declare_plugin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Fanout,
    Idle,
}

/// WebSocket load client
#[derive(Debug, Parser)]
#[command(name = "ws bench", about = "Load-test a WebSocket server, checking every reply")]
struct Args {
    /// Server url (ws:// or wss://)
    url: String,
    /// What to measure
    #[arg(long, value_enum, default_value = "echo")]
    mode: Mode,
    /// Connections (echo, idle) or receivers (fanout)
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// Messages in flight per connection (echo) or ahead of the slowest receiver (fanout)
    #[arg(long = "in-flight", short = 'w', default_value_t = 64)]
    in_flight: usize,
    /// Payload size in bytes
    #[arg(long, short = 's', default_value_t = 32)]
    size: usize,
    /// Send binary messages (default: text)
    #[arg(long)]
    binary: bool,
    /// Offer permessage-deflate (off by default, so that a run measures the server's
    /// WebSocket path and not zlib)
    #[arg(long)]
    deflate: bool,
    /// What the payloads look like (json: for runs with --deflate)
    #[arg(long, value_enum, default_value = "letters")]
    payload: PayloadKind,
    /// Seconds to run after the warm-up
    #[arg(long, short = 'd', default_value_t = 5.0, conflicts_with = "messages")]
    duration: f64,
    /// Stop after this many messages in all (echo: round trips; fanout: messages sent)
    #[arg(long, short = 'n')]
    messages: Option<u64>,
    /// Seconds of warm-up not counted in the results
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Echo: replies are one byte stream, checked as the concatenation of what was sent
    /// whatever their message boundaries and types (for bridges and proxies that re-frame:
    /// `ws bridge ws-listen:… tcp:ECHO`)
    #[arg(long)]
    reframed: bool,
    /// Fanout: receivers connect round-robin to these servers instead of URL, where the
    /// sender stays (servers sharing their rooms, e.g. through Redis)
    #[arg(long = "receivers-url", value_name = "URL")]
    receivers_url: Vec<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// The deterministic payloads: message `seq` is ASCII (valid as text), starts with `seq` in
/// hex so that reordering or loss shows, and its byte `i` after that is byte `i + offset(seq)`
/// of a pattern: `b'a' + j % 26` (`--payload letters`, offsets `seq % 26`), or a 1 MiB
/// document of JSON records whose values vary (`--payload json`, offsets spread over it, so
/// that consecutive messages differ as an API's do and deflate's window does not simply find
/// the previous message again). Built once,
/// so that making and checking a 16 MiB message costs a copy and a compare, not a loop per
/// byte (the load client must not be the limit).
struct Payloads {
    size: usize,
    /// The pattern, `size + spread` bytes.
    pattern: Vec<u8>,
    /// How many offsets into the pattern messages start at.
    spread: usize,
    kind: PayloadKind,
}

/// What the payloads look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PayloadKind {
    /// abc…z repeated
    Letters,
    /// JSON-like records: `{"id":17,"user":"user-17","score":3617,"active":true},…`
    Json,
}

impl Payloads {
    fn new(size: usize, kind: PayloadKind) -> Self {
        let spread = match kind {
            PayloadKind::Letters => 26,
            PayloadKind::Json => 1 << 20,
        };
        let pattern = match kind {
            PayloadKind::Letters => (0..size + spread).map(|j| b'a' + (j % 26) as u8).collect(),
            PayloadKind::Json => {
                let mut p = String::with_capacity(size + spread + 128);
                let mut n: u64 = 0;
                while p.len() < size + spread {
                    p.push_str(&format!(
                        r#"{{"id":{n},"user":"user-{}","score":{},"active":{}}},"#,
                        n % 97,
                        n * 7919 % 10_000,
                        n % 3 != 0
                    ));
                    n += 1;
                }
                p.truncate(size + spread);
                p.into_bytes()
            }
        };
        Payloads { size, pattern, spread, kind }
    }

    fn offset(&self, seq: u64) -> usize {
        match self.kind {
            PayloadKind::Letters => (seq % 26) as usize,
            // An odd step: every offset in turn, far from the last.
            PayloadKind::Json => (seq.wrapping_mul(40_503) % self.spread as u64) as usize,
        }
    }

    fn head(&self, seq: u64) -> ([u8; 16], usize) {
        let mut head = [0u8; 16];
        head.copy_from_slice(format!("{seq:016x}").as_bytes());
        (head, self.size.min(16))
    }

    fn bytes(&self, seq: u64) -> Vec<u8> {
        let off = self.offset(seq);
        let mut p = self.pattern[off..off + self.size].to_vec();
        let (head, h) = self.head(seq);
        p[..h].copy_from_slice(&head[..h]);
        p
    }

    fn matches(&self, seq: u64, data: &[u8]) -> bool {
        let off = self.offset(seq);
        let (head, h) = self.head(seq);
        data.len() == self.size && data[..h] == head[..h] && data[h..] == self.pattern[off + h..off + self.size]
    }

    fn message(&self, seq: u64, binary: bool) -> Message {
        let p = self.bytes(seq);
        if binary {
            Message::Binary(p.into())
        } else {
            Message::Text(String::from_utf8(p).expect("ASCII payload").into())
        }
    }
}

/// Checks a received message against what `seq` must have been.
fn check(msg: &Message, seq: u64, payloads: &Payloads, binary: bool) -> Result<(), String> {
    let (data, is_binary) = match msg {
        Message::Text(t) => (t.as_bytes(), false),
        Message::Binary(b) => (&b[..], true),
        other => return Err(format!("unexpected {:?} frame", kind(other))),
    };
    if is_binary != binary {
        return Err(format!("message {seq} came back as {} instead of {}", tname(is_binary), tname(binary)));
    }
    if !payloads.matches(seq, data) {
        return Err(format!(
            "payload mismatch at message {seq} ({} bytes received, {} expected)",
            data.len(),
            payloads.size
        ));
    }
    Ok(())
}

fn tname(binary: bool) -> &'static str {
    if binary { "binary" } else { "text" }
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    }
}

struct Stats {
    count: Cell<u64>,
    bytes: Cell<u64>,
    hist: RefCell<Histogram<u64>>,
    /// Bytes through the deflate layers of the connections that ended (with --deflate).
    wire: Cell<Counters>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            count: Cell::new(0),
            bytes: Cell::new(0),
            hist: RefCell::new(Histogram::new(3).expect("histogram")),
            wire: Cell::new(Counters::default()),
        }
    }

    /// Adds a connection's deflate counters, if it negotiated deflate.
    fn add_wire(&self, ws: &WsStream) {
        if let Some(c) = ws.get_ref().deflate().map(|d| d.counters()) {
            let mut w = self.wire.get();
            w.wire_read += c.wire_read;
            w.plain_read += c.plain_read;
            w.wire_written += c.wire_written;
            w.plain_written += c.plain_written;
            self.wire.set(w);
        }
    }

    /// Inflated bytes per compressed byte received and sent, where deflate was used.
    fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let w = self.wire.get();
        let r = |plain: u64, wire: u64| (wire > 0).then(|| plain as f64 / wire as f64);
        (r(w.plain_read, w.wire_read), r(w.plain_written, w.wire_written))
    }

    fn record(&self, bytes: usize, latency: Option<Duration>) {
        self.count.set(self.count.get() + 1);
        self.bytes.set(self.bytes.get() + bytes as u64);
        if let Some(l) = latency {
            let _ = self.hist.borrow_mut().record((l.as_nanos() as u64).max(1));
        }
    }
}

struct Plan {
    client: ClientOptions,
    size: usize,
    payloads: Payloads,
    binary: bool,
    window: usize,
    warm_until: Instant,
    deadline: Option<Instant>,
    /// Per-connection message budget when `--messages` is given.
    budget: Option<u64>,
    /// Replies checked as a byte stream (`--reframed`).
    reframed: bool,
}

impl Plan {
    fn keep_going(&self, sent: u64, now: Instant) -> bool {
        self.deadline.is_none_or(|d| now < d) && self.budget.is_none_or(|b| sent < b)
    }
}

async fn next_msg(ws: &mut WsStream) -> Result<Message, String> {
    let next = match futures_lite::future::poll_once(ws.next()).await {
        Some(n) => n,
        None => {
            ws.flush().await.map_err(|e| e.to_string())?;
            ws.next().await
        }
    };
    match next {
        Some(Ok(Message::Close(f))) => Err(format!("server closed the connection ({f:?})")),
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("connection closed".into()),
    }
}

async fn echo_connection(plan: &Plan, stats: &Stats) -> Result<(), String> {
    let (ws, _) = connect(&plan.client).await.map_err(|e| e.to_string())?;
    // Reader and writer run concurrently: a client that stops reading while it writes a
    // large message would deadlock against any server that applies backpressure.
    let (mut sink, mut stream) = ws.split();
    let inflight: RefCell<VecDeque<(u64, Instant)>> = RefCell::new(VecDeque::with_capacity(plan.window));
    let room = event_listener::Event::new();
    let writer_done = Cell::new(false);
    let reader_failed = Cell::new(false);
    let writer = async {
        let mut seq = 0u64;
        loop {
            while inflight.borrow().len() >= plan.window && !reader_failed.get() {
                let l = room.listen();
                if inflight.borrow().len() < plan.window {
                    break;
                }
                sink.flush().await.map_err(|e| e.to_string())?;
                l.await;
            }
            if reader_failed.get() || !plan.keep_going(seq, Instant::now()) {
                break;
            }
            inflight.borrow_mut().push_back((seq, Instant::now()));
            sink.feed(plan.payloads.message(seq, plan.binary)).await.map_err(|e| e.to_string())?;
            seq += 1;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
        writer_done.set(true);
        room.notify(usize::MAX);
        Ok::<_, String>(sink)
    };
    let reader = async {
        let result = read_echoes(plan, stats, &mut stream, &inflight, &room, &writer_done).await;
        if result.is_err() {
            reader_failed.set(true);
            room.notify(usize::MAX);
        }
        result
    };
    let (sink, read) = futures_lite::future::zip(writer, reader).await;
    read?;
    let mut ws = WsStream::reunite(sink?, stream).map_err(|_| "cannot reunite the socket halves".to_string())?;
    stats.add_wire(&ws);
    ws_common::session::close_and_drain(&mut ws, 1000, "bench done").await;
    Ok(())
}

async fn read_echoes(
    plan: &Plan,
    stats: &Stats,
    stream: &mut async_tungstenite::WebSocketReceiver<ws_common::ws::WsIo>,
    inflight: &RefCell<VecDeque<(u64, Instant)>>,
    room: &event_listener::Event,
    writer_done: &Cell<bool>,
) -> Result<(), String> {
    let mut current = None;
    loop {
        if writer_done.get() && inflight.borrow().is_empty() {
            return Ok(());
        }
        let next = smol::future::or(async { Some(stream.next().await) }, async {
            // Wake up now and then to notice that the writer has finished.
            ws_common::runtime::Timer::after(Duration::from_millis(100)).await;
            None
        })
        .await;
        let msg = match next {
            None => continue,
            Some(Some(Ok(Message::Close(f)))) => return Err(format!("server closed the connection ({f:?})")),
            Some(Some(Ok(m))) => m,
            Some(Some(Err(e))) => return Err(e.to_string()),
            Some(None) => return Err("connection closed".into()),
        };
        if matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            continue;
        }
        if plan.reframed {
            stream_check(plan, stats, &msg, inflight, &mut current, room)?;
            continue;
        }
        let front = inflight.borrow_mut().pop_front();
        let Some((expect, sent_at)) = front else {
            return Err("received a message that was never sent".into());
        };
        check(&msg, expect, &plan.payloads, plan.binary)?;
        let now = Instant::now();
        if now >= plan.warm_until {
            stats.record(plan.size, Some(now - sent_at));
        }
        room.notify(1);
    }
}

/// `--reframed`: `msg` continues the byte stream of the payloads in flight; each payload
/// completed is a round trip. `current` is the payload being matched and how much of it came.
fn stream_check(
    plan: &Plan,
    stats: &Stats,
    msg: &Message,
    inflight: &RefCell<VecDeque<(u64, Instant)>>,
    current: &mut Option<(u64, Vec<u8>, usize)>,
    room: &event_listener::Event,
) -> Result<(), String> {
    let mut data: &[u8] = match msg {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => &[],
    };
    while !data.is_empty() {
        if current.is_none() {
            let Some(&(seq, _)) = inflight.borrow().front() else {
                return Err("received bytes that were never sent".into());
            };
            *current = Some((seq, plan.payloads.bytes(seq), 0));
        }
        let (seq, expected, at) = current.as_mut().expect("set above");
        let n = data.len().min(expected.len() - *at);
        if data[..n] != expected[*at..*at + n] {
            return Err(format!("byte stream mismatch in message {seq} at byte {at}"));
        }
        *at += n;
        data = &data[n..];
        if *at == expected.len() {
            *current = None;
            let (_, sent_at) = inflight.borrow_mut().pop_front().expect("the front was being matched");
            let now = Instant::now();
            if now >= plan.warm_until {
                stats.record(plan.size, Some(now - sent_at));
            }
            room.notify(1);
        }
    }
    Ok(())
}

/// Fan-out: the sender waits on `progress` whenever it is `window` ahead of the slowest.
struct Fanout {
    received: RefCell<Vec<u64>>,
    progress: event_listener::Event,
    sent: Cell<u64>,
    done: Cell<bool>,
}

impl Fanout {
    fn slowest(&self) -> u64 {
        self.received.borrow().iter().copied().min().unwrap_or(0)
    }
}

async fn fanout_receiver(plan: &Plan, stats: &Stats, f: &Fanout, idx: usize, mut ws: WsStream) -> Result<(), String> {
    let mut expect = 0u64;
    loop {
        if f.done.get() && expect >= f.sent.get() {
            break;
        }
        let msg = smol::future::or(async { Some(next_msg(&mut ws).await) }, async {
            ws_common::runtime::Timer::after(Duration::from_millis(200)).await;
            None
        })
        .await;
        let Some(msg) = msg else { continue };
        let msg = msg?;
        if matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            continue;
        }
        check(&msg, expect, &plan.payloads, plan.binary)?;
        expect += 1;
        f.received.borrow_mut()[idx] = expect;
        f.progress.notify(1);
        if Instant::now() >= plan.warm_until {
            stats.record(plan.size, None);
        }
    }
    stats.add_wire(&ws);
    ws_common::session::close_and_drain(&mut ws, 1000, "bench done").await;
    Ok(())
}

async fn fanout_sender(plan: &Plan, f: &Fanout, mut ws: WsStream) -> Result<(), String> {
    let mut seq = 0u64;
    while plan.keep_going(seq, Instant::now()) {
        while seq >= f.slowest() + plan.window as u64 {
            let listener = f.progress.listen();
            if seq < f.slowest() + plan.window as u64 {
                break;
            }
            ws.flush().await.map_err(|e| e.to_string())?;
            listener.await;
        }
        ws.feed(plan.payloads.message(seq, plan.binary)).await.map_err(|e| e.to_string())?;
        seq += 1;
        f.sent.set(seq);
    }
    ws.flush().await.map_err(|e| e.to_string())?;
    f.done.set(true);
    // Keep the sender open until every receiver has everything (or 10 s pass).
    let until = Instant::now() + Duration::from_secs(10);
    while f.slowest() < seq && Instant::now() < until {
        ws_common::runtime::Timer::after(Duration::from_millis(20)).await;
    }
    ws_common::session::close_and_drain(&mut ws, 1000, "bench done").await;
    Ok(())
}

#[derive(Debug, Default)]
struct Bench;

impl Plugin for Bench {
    const NAME: &'static CStr = c"bench";
    const SUMMARY: &'static CStr = c"WebSocket load client (echo, fan-out, idle connections)";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        if args.connections == 0 || args.in_flight == 0 {
            return Err(Error::usage("--connections and --in-flight must be at least 1"));
        }
        if args.mode == Mode::Idle || args.connections > 512 {
            ws_common::ws::raise_fd_limit(args.connections as u64 + 256);
        }
        let client = ClientOptions {
            max_message: args.size.max(1 << 20) * 2,
            deflate: args.deflate,
            ..ClientOptions::new(url, args.tls.clone(), Duration::from_secs(10))
        };
        ws_common::runtime::block_on(|ex| async move {
            match args.mode {
                Mode::Echo => run_echo(&ex, &args, client).await,
                Mode::Fanout => run_fanout(&ex, &args, client).await,
                Mode::Idle => run_idle(&ex, &args, client).await,
            }
        })
    }
}

fn plan(args: &Args, client: ClientOptions, start: Instant, conns: usize) -> Plan {
    let warm = Duration::from_secs_f64(args.warmup.max(0.0));
    let (deadline, budget) = match args.messages {
        Some(n) => (None, Some(n.div_ceil(conns as u64))),
        None => (Some(start + warm + Duration::from_secs_f64(args.duration.max(0.01))), None),
    };
    Plan {
        client,
        size: args.size,
        payloads: Payloads::new(args.size, args.payload),
        binary: args.binary,
        window: args.in_flight,
        warm_until: if args.messages.is_some() { start } else { start + warm },
        deadline,
        budget,
        reframed: args.reframed,
    }
}

async fn run_echo(ex: &ws_common::runtime::Spawner, args: &Args, client: ClientOptions) -> Result<(), Error> {
    let start = Instant::now();
    let plan = Rc::new(plan(args, client, start, args.connections));
    let stats = Rc::new(Stats::new());
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (plan, stats) = (plan.clone(), stats.clone());
            ex.spawn(async move { echo_connection(&plan, &stats).await })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await {
            errors.push(e);
        }
    }
    let measured = Instant::now().saturating_duration_since(plan.warm_until).as_secs_f64().max(1e-9);
    report(args, "echo", &stats, measured, errors.len(), args.connections);
    match errors.into_iter().next() {
        Some(e) => Err(Error::failure(e)),
        None if stats.count.get() == 0 => Err(Error::failure("no round trip completed")),
        None => Ok(()),
    }
}

async fn run_fanout(ex: &ws_common::runtime::Spawner, args: &Args, client: ClientOptions) -> Result<(), Error> {
    let mut targets = Vec::new();
    for u in &args.receivers_url {
        targets.push(ClientOptions { url: ws_common::url::parse_ws_url(u)?, ..client.clone() });
    }
    if targets.is_empty() {
        targets.push(client.clone());
    }
    let mut receivers = Vec::new();
    for i in 0..args.connections {
        let target = &targets[i % targets.len()];
        let (ws, _) = connect(target).await.map_err(|e| Error::failure(format!("receiver: {e}")))?;
        receivers.push(ws);
    }
    let (sender, _) = connect(&client).await.map_err(|e| Error::failure(format!("sender: {e}")))?;
    // Give the server a moment to register the last connection before messages flow.
    ws_common::runtime::Timer::after(Duration::from_millis(100)).await;
    let start = Instant::now();
    let plan = Rc::new(plan(args, client, start, 1));
    let stats = Rc::new(Stats::new());
    let f = Rc::new(Fanout {
        received: RefCell::new(vec![0; args.connections]),
        progress: event_listener::Event::new(),
        sent: Cell::new(0),
        done: Cell::new(false),
    });
    let mut tasks = Vec::new();
    for (i, ws) in receivers.into_iter().enumerate() {
        let (plan, stats, f) = (plan.clone(), stats.clone(), f.clone());
        tasks.push(ex.spawn(async move { fanout_receiver(&plan, &stats, &f, i, ws).await }));
    }
    let send = {
        let (plan, f) = (plan.clone(), f.clone());
        ex.spawn(async move { fanout_sender(&plan, &f, sender).await })
    };
    let mut errors = Vec::new();
    if let Err(e) = send.await {
        errors.push(format!("sender: {e}"));
    }
    let measured = Instant::now().saturating_duration_since(plan.warm_until).as_secs_f64().max(1e-9);
    for t in tasks {
        if let Err(e) = t.await {
            errors.push(format!("receiver: {e}"));
        }
    }
    let expected = f.sent.get() * args.connections as u64;
    let delivered: u64 = f.received.borrow().iter().sum();
    report(args, "fanout", &stats, measured, errors.len(), args.connections);
    if let Some(e) = errors.into_iter().next() {
        return Err(Error::failure(e));
    }
    if delivered != expected {
        return Err(Error::failure(format!("delivered {delivered} of {expected} messages")));
    }
    Ok(())
}

async fn run_idle(ex: &ws_common::runtime::Spawner, args: &Args, client: ClientOptions) -> Result<(), Error> {
    let client = Rc::new(client);
    let open = Rc::new(Cell::new(0usize));
    let gate = Rc::new(smol::lock::Semaphore::new(256));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, gate) = (client.clone(), gate.clone());
            ex.spawn(async move {
                let _permit = gate.acquire().await;
                connect(&client).await.map(|(ws, _)| ws).map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut sockets = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(ws) => {
                open.set(open.get() + 1);
                sockets.push(ws);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let opened_in = start.elapsed();
    let line = format!(
        "idle: {} of {} connections open (in {:.2} s); holding them {:.1} s",
        open.get(),
        args.connections,
        opened_in.as_secs_f64(),
        args.duration
    );
    if args.json {
        println!(
            "{{\"mode\":\"idle\",\"url\":\"{}\",\"connections\":{},\"open\":{},\"open_seconds\":{:.3}}}",
            args.url,
            args.connections,
            open.get(),
            opened_in.as_secs_f64()
        );
    } else {
        println!("{line}");
    }
    ws_common::runtime::Timer::after(Duration::from_secs_f64(args.duration.max(0.0))).await;
    drop(sockets);
    match first_error {
        Some(e) => Err(Error::failure(format!("{} connections failed; first: {e}", args.connections - open.get()))),
        None => Ok(()),
    }
}

/// The JSON fields of the compression ratios that were measured.
fn deflate_json((read, written): (Option<f64>, Option<f64>)) -> String {
    let mut s = String::new();
    if let Some(r) = read {
        s.push_str(&format!(",\"deflate_ratio_in\":{r:.2}"));
    }
    if let Some(w) = written {
        s.push_str(&format!(",\"deflate_ratio_out\":{w:.2}"));
    }
    s
}

fn report(args: &Args, mode: &str, stats: &Stats, secs: f64, errors: usize, conns: usize) {
    let h = stats.hist.borrow();
    let n = stats.count.get();
    let rate = n as f64 / secs;
    let mbps = stats.bytes.get() as f64 / secs / 1e6;
    let q = |p: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(p) as f64 / 1e3 };
    let max = if h.is_empty() { 0.0 } else { h.max() as f64 / 1e3 };
    if args.json {
        println!(
            "{{\"mode\":\"{mode}\",\"url\":\"{}\",\"connections\":{conns},\"in_flight\":{},\"size\":{},\"binary\":{},\
             \"seconds\":{secs:.3},\"messages\":{n},\"rate\":{rate:.1},\"mb_per_s\":{mbps:.2},\
             \"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{max:.1},\"errors\":{errors}{}}}",
            args.url,
            args.in_flight,
            args.size,
            args.binary,
            q(0.5),
            q(0.9),
            q(0.99),
            deflate_json(stats.ratios())
        );
        return;
    }
    let what = if mode == "echo" { "round trips" } else { "messages delivered" };
    println!(
        "{mode}: {conns} connection(s), {} in flight, {} B {}",
        args.in_flight,
        args.size,
        if args.binary { "binary" } else { "text" }
    );
    println!("{what}: {n} in {secs:.2} s = {rate:.0}/s ({mbps:.2} MB/s)");
    if mode == "echo" {
        println!(
            "latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            q(0.5) / 1e3,
            q(0.9) / 1e3,
            q(0.99) / 1e3,
            max / 1e3
        );
    }
    match stats.ratios() {
        (Some(r), Some(w)) => println!("deflate: received {r:.2}× smaller on the wire, sent {w:.2}× smaller"),
        (Some(r), None) => println!("deflate: received {r:.2}× smaller on the wire"),
        _ => {}
    }
    println!("errors: {errors}");
}

declare_plugin!(Bench);

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u64, size: usize) -> Vec<u8> {
        Payloads::new(size, PayloadKind::Letters).bytes(seq)
    }

    #[test]
    fn payload_is_ascii_sized_and_numbered() {
        let p = payload(255, 32);
        assert_eq!(p.len(), 32);
        assert!(p.is_ascii());
        assert!(p.starts_with(b"00000000000000ff"));
        assert_eq!(payload(1, 4), b"0000");
        assert_ne!(payload(1, 32), payload(2, 32));
        // Byte i after the number is b'a' + (i + seq) % 26.
        assert_eq!(payload(3, 20)[16..], *b"tuvw");
        assert_eq!(payload(29, 20)[16..], *b"tuvw");
    }

    #[test]
    fn json_payloads_look_like_records_and_are_checked_the_same_way() {
        let p = Payloads::new(1024, PayloadKind::Json);
        let text = String::from_utf8(p.bytes(5)).expect("ASCII");
        assert_eq!(text.len(), 1024);
        assert!(text.starts_with("0000000000000005"));
        assert!(text[16..].contains(r#","user":"user-"#), "{text}");
        assert!(p.matches(5, text.as_bytes()));
        assert!(!p.matches(6, text.as_bytes()));
    }

    #[test]
    fn check_catches_wrong_content_type_and_order() {
        let p = Payloads::new(40, PayloadKind::Letters);
        let m = p.message(3, true);
        assert!(check(&m, 3, &p, true).is_ok());
        assert!(check(&m, 4, &p, true).unwrap_err().contains("mismatch"));
        assert!(check(&m, 3, &p, false).unwrap_err().contains("binary instead of text"));
        let mut bad = p.bytes(3);
        bad[30] ^= 1;
        assert!(check(&Message::Binary(bad.into()), 3, &p, true).is_err());
        assert!(check(&Message::Binary(p.bytes(3)[..39].to_vec().into()), 3, &p, true).is_err());
    }
}
