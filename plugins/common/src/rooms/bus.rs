//! Scale-out through Redis pub/sub: several `broadcast_server` (or `transfer`) processes
//! behind a load balancer share their rooms, so a message sent to one reaches the clients of
//! all. Redis is the distributed engine; this module only bridges it to a local room.
//!
//! - **Channels.** A room is a Redis channel: the default room is `--channel`
//!   (`ws:broadcast`), and a client whose URL path is `/room/NAME` is in room `ws:room:NAME`
//!   ([`channel_for_path`]). A server subscribes to a room's channel while it has at least
//!   one local client in it, and a client's session starts only once that subscription is
//!   confirmed, so nothing published after its handshake is missed.
//! - **Wire format.** What a server publishes is `WS1`, then `t` (text) or `b` (binary), then
//!   its 8-byte server id (big-endian), then the payload. A server skips messages carrying
//!   its own id: its local clients already got them directly. Anything else published on a
//!   room's channel (say `redis-cli publish ws:broadcast hello`) is delivered as text when it
//!   is UTF-8 and as binary otherwise.
//! - **Failures.** Redis unreachable at start is an error (the caller exits 1 before
//!   listening). Lost while running: logged once, local clients keep being served, the bus
//!   reconnects with backoff (100·2ⁿ ms, at most 5 s) and resubscribes, and logs when it is
//!   restored with the number of messages dropped meanwhile: what local clients send during
//!   an outage is not buffered, and the outbox is bounded in bytes while Redis is slow.
//! - **Order.** One connection publishes, in order, in pipelined batches; one subscribes.
//!   Messages from one sender reach every remote client in the order sent.
//!
//! The `redis` crate runs its connection drivers on smol's global executor; everything here
//! runs on the plugin's local executor, and the two meet only through the crate's channels.
//!
//! `rediss://` connections are made here, with the same TLS configuration as every other
//! client of `ws` ([`crate::tls`]: `--redis-ca-file`, a self-signed certificate given as the
//! CA, client certificates, plain-sentence failures), and handed to the crate as streams;
//! the crate's own TLS (webpki alone) refused what curl and the rest of `ws` accept.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use event_listener::Event;
use futures_lite::{FutureExt, StreamExt};
use redis::aio::{MultiplexedConnection, PubSub};

use crate::hub::{HubLink, Item};
use crate::{CommonError, error, info, warning};

/// The Redis option group of the servers that scale out.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Share rooms with other servers through Redis pub/sub: redis://HOST:PORT[/DB] or rediss://…
    #[arg(long = "redis", value_name = "URL")]
    pub url: Option<String>,
    /// Redis channel of the default room (clients on /room/NAME use ws:room:NAME)
    #[arg(long = "channel", default_value = "ws:broadcast", value_name = "NAME")]
    pub channel: String,
    /// rediss://: trust this CA (PEM) instead of the system's
    #[arg(long = "redis-ca-file", value_name = "FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// rediss://: client certificate (PEM) for Redis servers that require one
    #[arg(long = "redis-cert-file", value_name = "FILE", requires = "redis_key_file")]
    pub redis_cert_file: Option<PathBuf>,
    /// rediss://: private key (PEM) of --redis-cert-file
    #[arg(long = "redis-key-file", value_name = "FILE", requires = "redis_cert_file")]
    pub redis_key_file: Option<PathBuf>,
    /// Most bytes queued for Redis (and, in transfer, from it and per published message);
    /// beyond it messages are dropped and counted
    #[arg(long = "redis-queue-bytes", default_value_t = 64 << 20, value_name = "BYTES")]
    pub queue_bytes: usize,
}

/// The Redis channel of the room a client joins by requesting `path`.
pub fn channel_for_path(default: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.strip_prefix("/room/") {
        Some(name) if !name.is_empty() => format!("ws:room:{}", name.trim_end_matches('/')),
        _ => default.to_string(),
    }
}

/// A message crossing the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    pub binary: bool,
    pub payload: Bytes,
}

const MAGIC: &[u8; 3] = b"WS1";
const HEADER: usize = 3 + 1 + 8;

fn encode(server: u64, msg: &[u8], binary: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + msg.len());
    out.extend_from_slice(MAGIC);
    out.push(if binary { b'b' } else { b't' });
    out.extend_from_slice(&server.to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Decodes what arrived on a channel; `None` for this server's own messages.
fn decode(me: u64, raw: &[u8]) -> Option<BusMessage> {
    if raw.len() >= HEADER && raw[..3] == MAGIC[..] && matches!(raw[3], b't' | b'b') {
        let server = u64::from_be_bytes(raw[4..HEADER].try_into().ok()?);
        if server == me {
            return None;
        }
        let payload = &raw[HEADER..];
        let binary = raw[3] == b'b' || std::str::from_utf8(payload).is_err();
        return Some(BusMessage { binary, payload: Bytes::copy_from_slice(payload) });
    }
    Some(BusMessage { binary: std::str::from_utf8(raw).is_err(), payload: Bytes::copy_from_slice(raw) })
}

struct Conns {
    pubsub: PubSub,
    publisher: MultiplexedConnection,
}

/// One server's link to Redis.
pub struct Bus {
    id: u64,
    url: String,
    client: redis::Client,
    /// For rediss://: where to connect and the TLS options (the connections are made here).
    tls: Option<(String, u16, crate::tls::TlsArgs)>,
    /// Encoded messages waiting to be published, with their channel.
    outbox: ByteQueue<(Rc<str>, Vec<u8>)>,
    up: Cell<bool>,
    dropped: Cell<u64>,
    /// Channels local clients are in, with how many of them.
    wanted: RefCell<BTreeMap<Rc<str>, usize>>,
    subscribed: RefCell<BTreeSet<Rc<str>>>,
    /// Wakes the subscriber: the wanted channels changed.
    wanted_changed: Event,
    /// Wakes joiners: the subscriptions or the link changed.
    changed: Event,
    first: RefCell<Option<Conns>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("url", &self.url).field("up", &self.up.get()).finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Bus {
    /// Connects to Redis, or says why not: called before the server listens.
    pub async fn connect(args: &RedisArgs) -> Result<Option<Rc<Bus>>, CommonError> {
        let Some(url) = &args.url else { return Ok(None) };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (client, tls) = open_client(url, args)?;
        let bus = Rc::new(Bus {
            id: crate::random_u64(),
            url: url.clone(),
            client,
            tls,
            outbox: ByteQueue::new(args.queue_bytes.max(1)),
            up: Cell::new(false),
            dropped: Cell::new(0),
            wanted: RefCell::new(BTreeMap::new()),
            subscribed: RefCell::new(BTreeSet::new()),
            wanted_changed: Event::new(),
            changed: Event::new(),
            first: RefCell::new(None),
        });
        let conns =
            bus.open().await.map_err(|e| CommonError::Redis(format!("cannot connect to Redis at {url}: {e}")))?;
        *bus.first.borrow_mut() = Some(conns);
        bus.up.set(true);
        info!("redis: connected to {url} (server id {:016x})", bus.id);
        Ok(Some(bus))
    }

    async fn open(&self) -> Result<Conns, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let run = async {
            let Some((host, port, tls)) = &self.tls else {
                let publisher = self.client.get_multiplexed_async_connection_with_config(&config).await?;
                let pubsub = self.client.get_async_pubsub().await?;
                return Ok::<_, redis::RedisError>(Conns { pubsub, publisher });
            };
            let info = self.client.get_connection_info().redis_settings();
            let stream = tls_stream(host, *port, tls).await?;
            let (publisher, driver) = MultiplexedConnection::new_with_config(info, stream, config.clone()).await?;
            smol::spawn(driver).detach();
            let pubsub = PubSub::new(info, tls_stream(host, *port, tls).await?).await?;
            Ok(Conns { pubsub, publisher })
        };
        run.or(async {
            crate::runtime::Timer::after(TIMEOUT).await;
            Err(redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")))
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Publishes a local client's message to `channel`; while Redis is down or slow the
    /// message is dropped (and counted), never buffered without bound.
    pub fn publish(&self, channel: &Rc<str>, payload: &[u8], binary: bool) {
        if !self.up.get() {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        let queued =
            self.outbox.push_with(payload.len() + HEADER, || (channel.clone(), encode(self.id, payload, binary)));
        if !queued {
            if self.dropped.get() == 0 {
                warning!("redis: publishing is behind by {} bytes; dropping messages", self.outbox.bytes());
            }
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    /// A local client entered `channel`: subscribes if it is the first, and waits until the
    /// subscription is confirmed (or Redis is down, or 5 s passed).
    pub async fn join(&self, channel: &Rc<str>) {
        *self.wanted.borrow_mut().entry(channel.clone()).or_insert(0) += 1;
        self.wanted_changed.notify(1);
        let wait = async {
            loop {
                let l = self.changed.listen();
                if !self.up.get() || self.subscribed.borrow().contains(channel) {
                    return;
                }
                l.await;
            }
        };
        wait.or(async {
            crate::runtime::Timer::after(TIMEOUT).await;
        })
        .await;
    }

    /// A local client left `channel`; the last one out unsubscribes.
    pub fn leave(&self, channel: &Rc<str>) {
        let mut wanted = self.wanted.borrow_mut();
        if let Some(n) = wanted.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                wanted.remove(channel);
                self.wanted_changed.notify(1);
            }
        }
    }

    /// Runs the link forever: publishes the outbox, keeps the subscriptions in line with
    /// the local rooms, hands every message from another server to `deliver`, and
    /// reconnects when Redis goes away.
    pub async fn run(&self, deliver: impl AsyncFn(&str, BusMessage)) {
        let mut conns = self.first.borrow_mut().take();
        let mut attempt = 0u32;
        let mut down_since: Option<Instant> = None;
        loop {
            let c = match conns.take() {
                Some(c) => c,
                None => match self.open().await {
                    Ok(c) => c,
                    Err(e) => {
                        let wait = crate::ws::backoff(attempt, MAX_BACKOFF);
                        info!("redis: reconnecting to {} failed ({e}); next attempt in {wait:?}", self.url);
                        attempt += 1;
                        crate::runtime::Timer::after(wait).await;
                        continue;
                    }
                },
            };
            if let Some(since) = down_since.take() {
                info!(
                    "redis: connection restored after {:.1?}; {} messages from local clients were dropped during the outage",
                    since.elapsed(),
                    self.dropped.replace(0)
                );
            }
            attempt = 0;
            self.up.set(true);
            self.changed.notify(usize::MAX);
            let why = self.session(c, &deliver).await;
            self.up.set(false);
            self.subscribed.borrow_mut().clear();
            self.dropped.set(self.outbox.clear() as u64);
            self.changed.notify(usize::MAX);
            error!("redis: connection to {} lost ({why}); serving local clients only, reconnecting", self.url);
            down_since = Some(Instant::now());
        }
    }

    /// One connected period; returns why it ended.
    async fn session(&self, c: Conns, deliver: &impl AsyncFn(&str, BusMessage)) -> String {
        let (mut sink, mut stream) = c.pubsub.split();
        let mut publisher = c.publisher;
        let subscriptions = async {
            loop {
                let l = self.wanted_changed.listen();
                let (add, remove): (Vec<Rc<str>>, Vec<Rc<str>>) = {
                    let wanted = self.wanted.borrow();
                    let subscribed = self.subscribed.borrow();
                    (
                        wanted.keys().filter(|c| !subscribed.contains(*c)).cloned().collect(),
                        subscribed.iter().filter(|c| !wanted.contains_key(*c)).cloned().collect(),
                    )
                };
                for ch in add.iter().cloned() {
                    sink.subscribe(&*ch).await.map_err(|e| format!("SUBSCRIBE {ch}: {e}"))?;
                    info!("redis: subscribed to {ch}");
                    self.subscribed.borrow_mut().insert(ch);
                    self.changed.notify(usize::MAX);
                }
                for ch in remove.iter().cloned() {
                    sink.unsubscribe(&*ch).await.map_err(|e| format!("UNSUBSCRIBE {ch}: {e}"))?;
                    info!("redis: unsubscribed from {ch}");
                    self.subscribed.borrow_mut().remove(&ch);
                }
                if add.is_empty() && remove.is_empty() {
                    l.await;
                }
            }
        };
        let publishing = async {
            loop {
                let batch = self.outbox.take().await;
                let mut pipe = redis::pipe();
                for ((ch, payload), _) in &batch {
                    pipe.publish(&**ch, payload).ignore();
                }
                let sent = pipe.exec_async(&mut publisher).await;
                self.outbox.release(batch.iter().map(|b| b.1).sum());
                sent.map_err(|e| format!("PUBLISH: {e}"))?;
            }
        };
        let receiving = async {
            while let Some(msg) = stream.next().await {
                if let Some(m) = decode(self.id, msg.get_payload_bytes()) {
                    deliver(msg.get_channel_name(), m).await;
                }
            }
            Err::<(), _>("the server closed the connection".to_string())
        };
        match subscriptions.or(publishing).or(receiving).await {
            Err(why) => why,
            Ok(()) => "ended".into(),
        }
    }
}

/// The client (for its parsed settings and plain connections) and, for rediss://, where to
/// connect over TLS and with which options.
type Opened = (redis::Client, Option<(String, u16, crate::tls::TlsArgs)>);

fn open_client(url: &str, args: &RedisArgs) -> Result<Opened, CommonError> {
    let bad = |reason: String| CommonError::BadUrl { url: url.to_string(), reason };
    let parsed = ::url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => {}
        other => return Err(bad(format!("scheme '{other}' is not redis:// or rediss://"))),
    }
    let custom_tls = args.redis_ca_file.is_some() || args.redis_cert_file.is_some();
    if custom_tls && parsed.scheme() != "rediss" {
        return Err(CommonError::Usage("--redis-ca-file and --redis-cert-file need a rediss:// URL".into()));
    }
    let client = redis::Client::open(url).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "rediss" {
        return Ok((client, None));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host".into()))?.trim_matches(['[', ']']).to_string();
    let tls = crate::tls::TlsArgs {
        ca_file: args.redis_ca_file.clone(),
        cert_file: args.redis_cert_file.clone(),
        key_file: args.redis_key_file.clone(),
        ..Default::default()
    };
    tls.client_config(&[])?;
    Ok((client, Some((host, parsed.port().unwrap_or(6379), tls))))
}

/// A TLS connection to Redis, made like every other TLS client of `ws`, as the `redis`
/// crate's I/O traits (tokio's) want it. The link runs on smol's threads (it is shared by
/// the process's workers), so its socket is smol's, not a loop's.
async fn tls_stream(
    host: &str,
    port: u16,
    tls: &crate::tls::TlsArgs,
) -> Result<tokio_util::compat::Compat<futures_rustls::client::TlsStream<smol::net::TcpStream>>, redis::RedisError> {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let fail = |msg: String| redis::RedisError::from(std::io::Error::other(msg));
    let tcp = smol::net::TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    let addr = crate::net::format_host_port(host, port);
    let stream = crate::dial::tls_client(tcp, host, &addr, tls, &[]).await.map_err(|e| fail(e.to_string()))?;
    Ok(stream.compat())
}

/// A room and how many clients are in it.
type Entered<R> = (Rc<R>, usize);

/// A queue bounded in bytes, for messages that are dropped rather than waited for (what a
/// server publishes to Redis, what it receives from the others). An item is taken whatever
/// its size when the queue is empty, so one larger than the bound still passes.
pub struct ByteQueue<T> {
    items: RefCell<VecDeque<(T, usize)>>,
    /// Bytes queued, plus those taken and not yet released.
    bytes: Cell<usize>,
    limit: usize,
    ready: Event,
}

impl<T> std::fmt::Debug for ByteQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteQueue").field("bytes", &self.bytes.get()).field("limit", &self.limit).finish()
    }
}

impl<T> ByteQueue<T> {
    pub fn new(limit: usize) -> Self {
        ByteQueue { items: RefCell::new(VecDeque::new()), bytes: Cell::new(0), limit, ready: Event::new() }
    }

    /// Queues what `make` builds, counted as `size` bytes, unless that would pass the bound
    /// (then `make` is not called): false when the item is dropped.
    pub fn push_with(&self, size: usize, make: impl FnOnce() -> T) -> bool {
        if self.bytes.get() + size > self.limit && !self.items.borrow().is_empty() {
            return false;
        }
        self.bytes.set(self.bytes.get() + size);
        self.items.borrow_mut().push_back((make(), size));
        self.ready.notify(1);
        true
    }

    /// Waits for items and takes them all, with their sizes; the bytes still count until
    /// [`release`](Self::release)d.
    pub async fn take(&self) -> Vec<(T, usize)> {
        self.ready().await;
        self.items.borrow_mut().drain(..).collect()
    }

    /// Waits for an item and takes the oldest, with its size; its bytes still count until
    /// [`release`](Self::release)d (the others stay queued).
    pub async fn pop(&self) -> (T, usize) {
        loop {
            self.ready().await;
            if let Some(item) = self.items.borrow_mut().pop_front() {
                return item;
            }
        }
    }

    async fn ready(&self) {
        loop {
            let l = self.ready.listen();
            if !self.items.borrow().is_empty() {
                return;
            }
            l.await;
        }
    }

    /// Taken items of `bytes` in all are done with.
    pub fn release(&self, bytes: usize) {
        self.bytes.set(self.bytes.get().saturating_sub(bytes));
    }

    /// Drops everything, taken items included; returns how many were still queued.
    pub fn clear(&self) -> usize {
        self.bytes.set(0);
        self.items.borrow_mut().drain(..).count()
    }

    /// Bytes queued or taken and not released.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}

/// The rooms of one server (or of one worker of it): created when their first client
/// arrives, dropped (and unsubscribed) when their last one leaves. `R` is the relay's room
/// type. With workers, the rooms of the others are reached through the [`Hub`](crate::hub::Hub).
pub struct Rooms<R> {
    /// Each room with the number of clients that entered it and have not exited.
    map: RefCell<HashMap<Rc<str>, Entered<R>>>,
    default: String,
    bus: Option<Rc<Bus>>,
    hub: Option<HubLink>,
    make: Box<dyn Fn() -> Rc<R>>,
}

impl<R> std::fmt::Debug for Rooms<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").field("rooms", &self.map.borrow().len()).field("bus", &self.bus).finish()
    }
}

impl<R> Rooms<R> {
    pub fn new(default: &str, bus: Option<Rc<Bus>>, make: impl Fn() -> Rc<R> + 'static) -> Rc<Rooms<R>> {
        Rooms::with_hub(default, bus, None, make)
    }

    fn with_hub(
        default: &str,
        bus: Option<Rc<Bus>>,
        hub: Option<HubLink>,
        make: impl Fn() -> Rc<R> + 'static,
    ) -> Rc<Rooms<R>> {
        Rc::new(Rooms {
            map: RefCell::new(HashMap::new()),
            default: default.to_string(),
            bus,
            hub,
            make: Box::new(make),
        })
    }

    /// Connects to Redis when `args` ask for it (an error if it is down), then makes the
    /// rooms of a server: called before the server listens.
    pub async fn connect(args: &RedisArgs, make: impl Fn() -> Rc<R> + 'static) -> Result<Rc<Rooms<R>>, CommonError> {
        Ok(Rooms::new(&args.channel, Bus::connect(args).await?, make))
    }

    /// The rooms of one worker of a server with workers: the others' through `hub`, and the
    /// Redis link when `args` ask for one and this worker holds it.
    pub async fn for_worker(
        args: &RedisArgs,
        hub: HubLink,
        make: impl Fn() -> Rc<R> + 'static,
    ) -> Result<Rc<Rooms<R>>, CommonError> {
        let bus = if hub.holds_redis() { Bus::connect(args).await? } else { None };
        Ok(Rooms::with_hub(&args.channel, bus, Some(hub), make))
    }

    /// The server's background work: runs the link to Redis and takes in what the other
    /// workers send, handing each message from elsewhere to `deliver` with the local room of
    /// its channel (none: dropped). Without either, never ends and does nothing.
    pub async fn relay_from_bus(&self, deliver: impl AsyncFn(Rc<R>, BusMessage)) {
        let from_redis = async {
            match &self.bus {
                Some(bus) => {
                    bus.run(async |channel, m| {
                        if let Some(hub) = &self.hub {
                            hub.publish(channel, &m, true);
                        }
                        if let Some(room) = self.get(channel) {
                            deliver(room, m).await;
                        }
                    })
                    .await
                }
                None => std::future::pending().await,
            }
        };
        let from_workers = async {
            let Some(hub) = &self.hub else { return std::future::pending().await };
            let mut joins = futures_util::stream::FuturesUnordered::new();
            loop {
                let items = hub.recv().or(async {
                    // Subscriptions asked for by other workers complete meanwhile.
                    while futures_util::StreamExt::next(&mut joins).await.is_some() {}
                    std::future::pending().await
                });
                for item in items.await {
                    match item {
                        Item::Message { channel, msg, to_redis } => {
                            if to_redis && let Some(bus) = &self.bus {
                                bus.publish(&Rc::from(&*channel), &msg.payload, msg.binary);
                            }
                            if let Some(room) = self.get(&channel) {
                                deliver(room, msg).await;
                            }
                        }
                        Item::Subscribe { channel, done } => match &self.bus {
                            Some(bus) => joins.push(async move {
                                bus.join(&Rc::from(&*channel)).await;
                                let _ = done.send(()).await;
                            }),
                            None => drop(done),
                        },
                        Item::Unsubscribe(channel) => {
                            if let Some(bus) = &self.bus {
                                bus.leave(&Rc::from(&*channel));
                            }
                        }
                    }
                }
            }
        };
        from_redis.or(from_workers).await
    }

    /// The link to Redis, if the server scales out and this worker holds it.
    pub fn bus(&self) -> Option<&Rc<Bus>> {
        self.bus.as_ref()
    }

    /// Hands a local client's message to the clients of `channel` elsewhere: the other
    /// workers' and, through Redis, the other servers'.
    pub fn publish(&self, channel: &Rc<str>, payload: Bytes, binary: bool) {
        if let Some(bus) = &self.bus {
            bus.publish(channel, &payload, binary);
        }
        if let Some(hub) = &self.hub {
            hub.publish(channel, &BusMessage { binary, payload }, false);
        }
    }

    /// Whether messages leave this worker at all (Redis or other workers).
    pub fn shared(&self) -> bool {
        self.bus.is_some() || self.hub.is_some()
    }

    /// The room a client asking for `path` is in, with its channel; with Redis, returns once
    /// the server is subscribed to it.
    pub async fn enter(&self, path: &str) -> (Rc<str>, Rc<R>) {
        let channel: Rc<str> = channel_for_path(&self.default, path).into();
        let room = {
            let mut map = self.map.borrow_mut();
            let entry = map.entry(channel.clone()).or_insert_with(|| ((self.make)(), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        if let Some(hub) = &self.hub {
            hub.join(&channel).await;
        }
        if let Some(bus) = &self.bus {
            bus.join(&channel).await;
        }
        (channel, room)
    }

    /// A client that [`enter`](Self::enter)ed `channel`'s room left it.
    pub fn exit(&self, channel: &Rc<str>) {
        if let Some(bus) = &self.bus {
            bus.leave(channel);
        }
        if let Some(hub) = &self.hub {
            hub.leave(channel);
        }
        let mut map = self.map.borrow_mut();
        if let Some(entry) = map.get_mut(channel) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(channel);
            }
        }
    }

    /// The local room of `channel`, if it has clients.
    pub fn get(&self, channel: &str) -> Option<Rc<R>> {
        self.map.borrow().get(channel).map(|e| e.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_queue_drops_past_its_bound_but_always_takes_one() {
        let q = ByteQueue::new(10);
        assert!(q.push_with(25, || "big"), "an empty queue takes anything");
        assert!(!q.push_with(1, || unreachable!("a dropped item is not built")));
        let (item, size) = crate::runtime::block_on(|_| async { q.pop().await });
        assert_eq!((item, size), ("big", 25));
        assert!(q.push_with(1, || "x") && q.bytes() == 26, "popped bytes count until released");
        q.release(25);
        assert!(q.push_with(9, || "y") && !q.push_with(1, || "z"));
        assert_eq!(crate::runtime::block_on(|_| async { q.take().await }).len(), 2);
        assert_eq!(q.clear(), 0);
        assert_eq!(q.bytes(), 0, "clear forgets taken bytes too");
    }

    #[test]
    fn rooms_come_from_the_path() {
        assert_eq!(channel_for_path("ws:broadcast", "/"), "ws:broadcast");
        assert_eq!(channel_for_path("ws:broadcast", "/room/"), "ws:broadcast");
        assert_eq!(channel_for_path("ws:broadcast", "/room/a?x=1"), "ws:room:a");
        assert_eq!(channel_for_path("ws:broadcast", "/room/a/"), "ws:room:a");
        assert_eq!(channel_for_path("c", "/other"), "c");
    }

    #[test]
    fn own_messages_are_skipped_and_types_kept() {
        let raw = encode(7, b"hi", false);
        assert!(decode(7, &raw).is_none());
        let m = decode(8, &raw).unwrap();
        assert!(!m.binary);
        assert_eq!(&m.payload[..], b"hi");
        let m = decode(8, &encode(7, &[0xff, 0], true)).unwrap();
        assert!(m.binary);
        // Foreign publishers: UTF-8 is text, the rest binary.
        assert!(!decode(8, b"hello").unwrap().binary);
        assert!(decode(8, &[0xc3]).unwrap().binary);
    }
}
