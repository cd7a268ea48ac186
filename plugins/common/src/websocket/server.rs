//! The skeleton every WebSocket server shares: limits, the accept loop, bounded handshakes,
//! and the reference's per-connection log lines.
//!
//! Each connection runs in its own task on the plugin's single-threaded executor, so one bad
//! client never disturbs the others: a handshake must finish within `--handshake-timeout`,
//! at most `--max-connections` clients are served at once (the next gets HTTP 503), and
//! messages over `--max-message-size` close the connection with 1009.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use futures_lite::FutureExt;

use crate::net::{ListenArgs, Peer, Transport, accept_tls};
use crate::runtime::Spawner;
use crate::workers::Counters;
use crate::ws::{self as wsx, DEFAULT_MAX_MESSAGE, Handshake, Refusal, WsStream};
use crate::{error, info, warning};

/// Limits every WebSocket server takes.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest message accepted, in bytes; larger ones close the connection with 1009
    #[arg(long = "max-message-size", default_value_t = DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    pub max_message_size: usize,
    /// Seconds a client has to finish the TLS and WebSocket handshakes
    #[arg(long = "handshake-timeout", default_value_t = 5, value_name = "S")]
    pub handshake_timeout: u64,
    /// Most clients served at once; more get HTTP 503
    #[arg(long = "max-connections", default_value_t = 16_384, value_name = "N")]
    pub max_connections: usize,
}

/// The flags every WebSocket server takes: where to listen, TLS, limits, and `-q`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print only warnings and errors
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Whether (and how) clients' permessage-deflate offers are accepted: set by the plugin,
    /// `None` declines them.
    #[arg(skip)]
    pub deflate: Option<crate::deflate::ServerPolicy>,
}

/// What [`Prepare`] settled: the answer's header lines, and what the connection's handler
/// gets in [`Client::carry`].
#[derive(Debug)]
pub struct Prepared {
    pub answer: wsx::Answer,
    pub carry: Box<dyn std::any::Any>,
}

/// Work a server does between a client's upgrade request and its answer, after the gate let
/// it in: `proxy_server` opens the upstream first, so that the client's 101 can carry the
/// upstream's answer (its extensions, its subprotocol).
/// `time` is added to the handshake's time limit.
#[derive(Clone)]
pub struct Prepare {
    pub run: Rc<dyn Fn(Handshake) -> futures_util::future::LocalBoxFuture<'static, Prepared>>,
    pub time: Duration,
}

impl std::fmt::Debug for Prepare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepare(..)")
    }
}

impl ServerArgs {
    /// Sets the log level, builds the TLS configuration, and [`serve`]s forever on a fresh
    /// runtime: the whole life of a server plugin.
    pub fn run<F, Fut>(&self, verbose: bool, gate: Option<Gate>, handle: F) -> Result<(), ws_plugin_api::Error>
    where
        F: Fn(Client) -> Fut + 'static,
        Fut: Future<Output = (u16, String)> + 'static,
    {
        self.run_with(verbose, gate, async || Ok((handle, std::future::pending::<()>())))
    }

    /// Like [`run`](Self::run), for servers with something to set up on the runtime before
    /// they listen (a failure there ends the run before the ready line): `prepare` returns the
    /// connection handler and a `background` future that runs beside the server (say, the
    /// link to Redis).
    pub fn run_with<P, F, Fut, B>(
        &self,
        verbose: bool,
        gate: Option<Gate>,
        prepare: P,
    ) -> Result<(), ws_plugin_api::Error>
    where
        P: AsyncFnOnce() -> Result<(F, B), crate::CommonError>,
        F: Fn(Client) -> Fut + 'static,
        Fut: Future<Output = (u16, String)> + 'static,
        B: Future<Output = ()>,
    {
        crate::log::set_verbosity(verbose, self.quiet);
        let tls = self.tls.server_config(&[])?;
        crate::runtime::block_on(|ex| async move {
            let (handle, background) = prepare().await?;
            let terms = Terms { tls, limits: self.limits.clone(), deflate: self.deflate, gate, prepare: None };
            serve(&ex, &self.listen, terms, handle)
                .or(async {
                    background.await;
                    Ok(())
                })
                .await?;
            Ok(())
        })
    }
}

impl ServerArgs {
    /// Like [`run`](Self::run) on `workers` threads ([`crate::workers`]): `make` gives each
    /// worker its gate and connection handler, on that worker's thread.
    pub fn run_workers<M, F, Fut>(&self, verbose: bool, workers: usize, make: M) -> Result<(), ws_plugin_api::Error>
    where
        M: Fn() -> (Option<Gate>, F) + Sync,
        F: Fn(Client) -> Fut + 'static,
        Fut: Future<Output = (u16, String)> + 'static,
    {
        self.run_workers_with(verbose, workers, |_, _| {
            let (gate, handle) = make();
            async move { Ok(Worker { gate, prepare: None, handle, background: std::future::pending::<()>() }) }
        })
    }

    /// Like [`run_with`](Self::run_with) on `workers` threads: `setup(i, tls)` runs on worker
    /// `i`'s loop once its socket is bound and gives what the [`Worker`] serves with; an
    /// error there ends the server. `tls` is the server's TLS configuration, if it has one.
    pub fn run_workers_with<S, SFut, F, Fut, B>(
        &self,
        verbose: bool,
        workers: usize,
        setup: S,
    ) -> Result<(), ws_plugin_api::Error>
    where
        S: Fn(usize, Option<Arc<rustls::ServerConfig>>) -> SFut + Sync,
        SFut: Future<Output = Result<Worker<F, B>, crate::CommonError>>,
        F: Fn(Client) -> Fut + 'static,
        Fut: Future<Output = (u16, String)> + 'static,
        B: Future<Output = ()>,
    {
        crate::log::set_verbosity(verbose, self.quiet);
        let tls = self.tls.server_config(&[])?;
        let want = self.limits.max_connections as u64 + 64;
        let limit = wsx::raise_fd_limit(want);
        crate::log::background();
        let sockets = crate::workers::bind(&self.listen, workers)?;
        warn_fd_limit(limit, want);
        let counters = Arc::new(Counters::default());
        let (limits, deflate) = (self.limits.clone(), self.deflate);
        crate::workers::run(workers, |i| {
            let (tls, limits, counters, setup, sockets) = (&tls, &limits, &counters, &setup, &sockets);
            crate::runtime::block_on(|ex| async move {
                let listener = sockets.take(i)?;
                let Worker { gate, prepare, handle, background } = setup(i, tls.clone()).await?;
                let terms = Terms { tls: tls.clone(), limits: limits.clone(), deflate, gate, prepare };
                serve_on(&ex, listener, terms, handle, counters, (workers > 1).then_some(i))
                    .or(async {
                        background.await;
                        Ok(())
                    })
                    .await?;
                Ok(())
            })
        })
    }
}

/// What one worker serves with: its gate, its [`Prepare`], the connection handler, and a
/// `background` future that runs beside it (say, its side of the rooms shared by the
/// workers).
pub struct Worker<F, B> {
    pub gate: Option<Gate>,
    pub prepare: Option<Prepare>,
    pub handle: F,
    pub background: B,
}

impl<F, B> std::fmt::Debug for Worker<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("gate", &self.gate.is_some()).field("prepare", &self.prepare).finish()
    }
}

/// A client that finished its handshake.
#[derive(Debug)]
pub struct Client {
    pub ws: WsStream,
    pub handshake: Handshake,
    pub peer: Peer,
    pub id: u64,
    /// What the server's [`Prepare`] made for this connection, if it has one.
    pub carry: Option<Box<dyn std::any::Any>>,
}

/// Decides, from the handshake request, whether to refuse a client before the upgrade.
pub type Gate = Rc<dyn Fn(&Handshake) -> Result<(), Refusal>>;

/// Binds, prints the ready line, and serves forever: each client that completes its
/// handshake is handed to `handle`, whose `(code, reason)` is logged when it returns.
pub async fn serve<F, Fut>(ex: &Spawner, listen: &ListenArgs, terms: Terms, handle: F) -> Result<(), crate::CommonError>
where
    F: Fn(Client) -> Fut + 'static,
    Fut: Future<Output = (u16, String)> + 'static,
{
    let want = terms.limits.max_connections as u64 + 64;
    let limit = wsx::raise_fd_limit(want);
    crate::log::background();
    let listener = listen.listen().await?;
    warn_fd_limit(limit, want);
    serve_on(ex, listener, terms, handle, &Arc::new(Counters::default()), None).await
}

fn warn_fd_limit(limit: u64, want: u64) {
    if limit < want {
        warning!(
            "open-file limit is {limit}: at most about {} clients can connect (raise it with `ulimit -n {want}`)",
            limit.saturating_sub(64)
        );
    }
}

/// Serves forever on `listener`, one worker of a server: the connection limit and client ids
/// are the server's, in `counters`; `worker` (with `--threads` above 1) is logged with each
/// new connection.
pub async fn serve_on<F, Fut>(
    ex: &Spawner,
    listener: crate::net::Listener,
    terms: Terms,
    handle: F,
    counters: &Arc<Counters>,
    worker: Option<usize>,
) -> Result<(), crate::CommonError>
where
    F: Fn(Client) -> Fut + 'static,
    Fut: Future<Output = (u16, String)> + 'static,
{
    let handle = Rc::new(handle);
    let terms = Rc::new(terms);
    loop {
        let (conn, peer) = listener.accept().await;
        let id = counters.next_id.fetch_add(1, Ordering::Relaxed);
        let (terms, counters, handle) = (terms.clone(), counters.clone(), handle.clone());
        ex.spawn(async move {
            let over_limit = counters.active.fetch_add(1, Ordering::Relaxed) >= terms.limits.max_connections;
            if let Some(client) = handshake(conn, peer, id, &terms, over_limit, worker).await {
                let (code, reason) = handle(client).await;
                info!("Closed connection: client id {id} code {code} reason {reason}");
            }
            counters.active.fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
}

/// The terms on which a server takes clients: TLS, limits, deflate, and its gate.
pub struct Terms {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: LimitArgs,
    /// `None` declines permessage-deflate.
    pub deflate: Option<crate::deflate::ServerPolicy>,
    pub gate: Option<Gate>,
    pub prepare: Option<Prepare>,
}

impl std::fmt::Debug for Terms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terms")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("deflate", &self.deflate)
            .field("gate", &self.gate.is_some())
            .field("prepare", &self.prepare.is_some())
            .finish()
    }
}

async fn handshake(
    conn: Transport,
    peer: Peer,
    id: u64,
    terms: &Terms,
    over_limit: bool,
    worker: Option<usize>,
) -> Option<Client> {
    let Terms { tls, limits, deflate, gate, prepare } = terms;
    let carry = std::cell::RefCell::new(None);
    let deflate = *deflate;
    if let Transport::Tcp(tcp) = &conn {
        let _ = tcp.set_nodelay(true);
    }
    let timeout =
        Duration::from_secs(limits.handshake_timeout.max(1)) + prepare.as_ref().map_or(Duration::ZERO, |p| p.time);
    // Which handshake a client that runs out of time was stuck in, for the log.
    let stage = std::cell::Cell::new(if tls.is_some() { "the TLS handshake" } else { "the WebSocket handshake" });
    let run = async {
        let stream = accept_tls(conn, tls.as_ref()).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
        stage.set("the WebSocket handshake");
        wsx::accept(stream, limits.max_message_size, deflate, async |hs: &Handshake| {
            if over_limit {
                return Err(Refusal { status: 503, reason: "Too many connections".into() });
            }
            if let Some(g) = gate {
                g(hs)?;
            }
            let Some(p) = prepare else { return Ok(wsx::Answer::Own) };
            let prepared = (p.run)(hs.clone()).await;
            *carry.borrow_mut() = Some(prepared.carry);
            Ok(prepared.answer)
        })
        .await
        .map_err(|e| format!("WebSocket handshake failed: {e}"))
    }
    .or(async {
        crate::runtime::Timer::after(timeout).await;
        Err(format!("no handshake within {timeout:?} (stuck in {})", stage.get()))
    });
    let (ws, hs) = match run.await {
        Ok(ok) => ok,
        Err(e) => {
            if over_limit {
                warning!("refused client {peer}: more than {} connections", limits.max_connections);
            } else {
                error!("client {peer}: {e}");
            }
            return None;
        }
    };
    info!("New connection");
    info!("remote ip: {}", peer.ip());
    info!("id: {id}");
    if let Some(w) = worker {
        info!("worker: {w}");
    }
    info!("Uri: {}", hs.uri);
    info!("Headers:");
    for (k, v) in &hs.headers {
        info!("{k}: {v}");
    }
    Some(Client { ws, handshake: hs, peer, id, carry: carry.into_inner() })
}

/// Echoes every text and binary message until the client closes; returns how it ended
/// (`echo_server`'s loop, and `push_server`'s after its pushes). Everything already received
/// is echoed before a flush, so pipelined clients get their replies in few writes; the
/// flush comes as soon as nothing more is ready.
pub async fn echo_messages(ws: &mut WsStream) -> (u16, String) {
    use futures_util::{SinkExt, StreamExt};
    let mut closed: Option<(u16, String)> = None;
    loop {
        let next = match futures_lite::future::poll_once(ws.next()).await {
            Some(n) => n,
            None => {
                if ws.flush().await.is_err() {
                    break;
                }
                ws.next().await
            }
        };
        match next {
            None => break,
            Some(Ok(m @ (wsx::Message::Text(_) | wsx::Message::Binary(_)))) => {
                info!("Received {} bytes", m.len());
                if ws.feed(m).await.is_err() {
                    break;
                }
            }
            Some(Ok(wsx::Message::Close(frame))) => {
                closed = Some(wsx::close_parts(frame.as_ref()));
                let _ = ws.flush().await;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if let Some(code) = wsx::fail(ws, &e).await {
                    return (code, wsx::reason(ws, &e));
                }
                break;
            }
        }
    }
    closed.unwrap_or((1006, "Abnormal closure".into()))
}

/// `-p` (echo_server, push_server): echo at the frame level, because tungstenite answers every ping by itself. Data
/// frames go back as they come (fragmentation kept), pings are ignored, a close is answered;
/// fragments out of sequence close with 1002 and bad UTF-8 in text with 1007, as without -p.
/// With permessage-deflate (`deflate`), compressed frames go back compressed, RSV1 kept:
/// the client's inflater has seen exactly what its compressor saw, message for message.
pub async fn echo_frames(stream: crate::net::Stream, max_message: usize, deflate: bool) -> (u16, String) {
    use crate::frames::{self, FrameError, FrameReader, op};
    use futures_lite::io::{AsyncWriteExt, BufReader};
    let (r, mut w) = futures_lite::io::split(stream);
    let mut reader = FrameReader::new(BufReader::new(r), max_message, true).with_rsv1(deflate);
    let mut message_len = 0usize;
    // The text check of the message in progress: `None` between messages, `Some(None)`
    // inside a binary one.
    let mut current: Option<Option<frames::Utf8Check>> = None;
    loop {
        let frame = reader.next().await.and_then(|f| {
            let Some(f) = f else { return Ok(None) };
            if f.rsv1 && (f.is_control() || f.opcode == op::CONTINUATION) {
                return Err(FrameError::Protocol("RSV1 set on a control or continuation frame"));
            }
            if !f.is_control() {
                if frames::check_order(f.opcode, current.is_some())? {
                    // Compressed text is checked by the client when it inflates the echo.
                    current = Some((f.opcode == op::TEXT && !f.rsv1).then(frames::Utf8Check::default));
                }
                if let Some(Some(check)) = &mut current {
                    check.push(&f.payload, f.fin)?;
                }
                if f.fin {
                    current = None;
                }
            }
            Ok(Some(f))
        });
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return (1006, "Abnormal closure".into()),
            Err(e) => {
                let code = e.close_code();
                if code != 1006 {
                    let close = frames::encode(true, op::CLOSE, &frames::close_payload(code, &e.to_string()), None);
                    let _ = w.write_all(&close).await;
                    let _ = w.flush().await;
                }
                return (code, e.to_string());
            }
        };
        match frame.opcode {
            op::PING => info!("Received ping (not answered: -p)"),
            op::PONG => {}
            op::CLOSE => {
                let _ = w.write_all(&frames::encode(true, op::CLOSE, &frame.payload, None)).await;
                let _ = w.flush().await;
                return frames::parse_close(&frame.payload);
            }
            opcode => {
                message_len += frame.payload.len();
                if frame.fin {
                    info!("Received {message_len} bytes");
                    message_len = 0;
                }
                let mut echoed = Vec::with_capacity(frame.payload.len() + frames::MAX_HEADER);
                let b0 = if frame.fin { 0x80 } else { 0 } | if frame.rsv1 { 0x40 } else { 0 } | opcode;
                frames::push_header(&mut echoed, b0, frame.payload.len(), None);
                echoed.extend_from_slice(&frame.payload);
                if w.write_all(&echoed).await.is_err() || w.flush().await.is_err() {
                    return (1006, "Abnormal closure".into());
                }
            }
        }
    }
}
