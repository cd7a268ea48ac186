//! `ws httpd`: a static HTTP/1.1 server (hyper 1 on smol), with IXWebSocket's redirect (`-L`)
//! and debug (`-D`) modes.
//!
//! Path safety is the point: the reference served `/../../etc/passwd`. Here the request path
//! is percent-decoded and refused if it holds NUL, a backslash, an encoded `/`, or a `..`
//! segment; the file is then opened with `openat2(RESOLVE_BENEATH)` relative to the root, so
//! the kernel itself refuses any path or symlink that leads outside it (one system call,
//! where resolving with `realpath` and comparing took five). Where `openat2` is missing
//! (Linux < 5.6), the path is resolved through symlinks and must still be under the root.
//! Anything refused is 404, never the file.
//!
//! Files are streamed in 64 KiB chunks (constant memory for any size). Files up to 64 KiB
//! are also kept in memory (16 MiB in all) with their headers, and answered from there while
//! one `stat` per request shows the same file unchanged (see [`Heads`]). `Last-Modified` and
//! `ETag` answer revalidation with 304; one `Range` gets 206 or 416; compressible files up to
//! 8 MiB are gzipped when the client accepts it; connections are kept alive, with a header
//! read timeout and a connection limit.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::{CStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::Parser;
use futures_lite::AsyncWriteExt;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ws_common::net::{Drained, ListenArgs, accept_tls};
use ws_common::tls::TlsArgs;
use ws_common::{info, warning};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Largest file gzipped on the fly (compressed in memory, so bounded).
const MAX_GZIP: u64 = 8 << 20;
const CHUNK: usize = 64 * 1024;

/// HTTP server
#[derive(Debug, Parser)]
#[command(name = "ws httpd", about = "Static HTTP server (GET/HEAD), with redirect (-L) and debug (-D) modes")]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Folder to serve
    #[arg(long, default_value = ".", value_name = "DIR")]
    root: PathBuf,
    /// Redirect mode: answer every non-POST request with 301 to --redirect_url
    #[arg(short = 'L')]
    redirect: bool,
    /// Where -L redirects to
    #[arg(long = "redirect_url", value_name = "URL")]
    redirect_url: Option<String>,
    /// Debug mode: log each request's line, headers and body, answer 200 OK
    #[arg(short = 'D')]
    debug: bool,
    /// Do not list folders without an index.html (404 instead)
    #[arg(long = "no-listing")]
    no_listing: bool,
    /// Seconds a client has to send a request's headers after connecting or after the last
    /// response (so also the HTTP/1.1 idle keep-alive limit)
    #[arg(long = "header-timeout", default_value_t = 10, value_name = "S")]
    header_timeout: u64,
    /// HTTP/2: seconds a connection may move no bytes before it is closed (HTTP/1.1's idle
    /// limit is --header-timeout)
    #[arg(long = "idle-timeout", default_value_t = 60, value_name = "S")]
    idle_timeout: u64,
    /// Most connections served at once; more are answered 503 and closed
    #[arg(long = "max-connections", default_value_t = 1024, value_name = "N")]
    max_connections: usize,
    /// Print only warnings and errors (no access log)
    #[arg(short = 'q')]
    quiet: bool,
}

enum Mode {
    Static { root: Root, listing: bool },
    Redirect(String),
    Debug,
}

struct Ctx {
    mode: Mode,
    heads: RefCell<Heads>,
}

#[derive(Debug, Default)]
struct Httpd;

impl Plugin for Httpd {
    const NAME: &'static CStr = c"httpd";
    const SUMMARY: &'static CStr = c"HTTP server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        ws_common::log::set_verbosity(false, args.quiet);
        let mode = if args.debug {
            Mode::Debug
        } else if args.redirect {
            Mode::Redirect(args.redirect_url.clone().ok_or_else(|| Error::usage("-L needs --redirect_url URL"))?)
        } else {
            let root =
                args.root.canonicalize().map_err(|e| Error::usage(format!("--root {}: {e}", args.root.display())))?;
            if !root.is_dir() {
                return Err(Error::usage(format!("--root {} is not a folder", args.root.display())));
            }
            Mode::Static {
                root: Root::new(root).map_err(|e| Error::usage(format!("--root: {e}")))?,
                listing: !args.no_listing,
            }
        };
        let tls = args.tls.server_config(&[b"h2", b"http/1.1"])?;
        let ctx = Rc::new(Ctx { mode, heads: RefCell::default() });
        ws_common::runtime::block_on(|ex| async move {
            let listener = args.listen.listen().await?;
            let active = Rc::new(Cell::new(0usize));
            loop {
                let (tcp, peer) = ws_common::net::accept(&listener).await;
                let (ctx, active, tls, ex2) = (ctx.clone(), active.clone(), tls.clone(), ex.clone());
                let header_timeout = Duration::from_secs(args.header_timeout.max(1));
                let idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
                let max = args.max_connections;
                ex.spawn(async move {
                    if active.get() >= max {
                        warning!("refused {peer}: more than {max} connections");
                        let mut tcp = tcp;
                        let _ = tcp
                            .write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                    active.set(active.get() + 1);
                    serve_connection(ctx, tcp, peer, tls, (header_timeout, idle_timeout), &ex2).await;
                    active.set(active.get() - 1);
                })
                .detach();
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
    }
}

async fn serve_connection(
    ctx: Rc<Ctx>,
    tcp: smol::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<std::sync::Arc<ws_common::tls::ServerConfig>>,
    (header_timeout, idle_timeout): (Duration, Duration),
    ex: &ws_common::runtime::Spawner,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = futures_lite::FutureExt::or(
        async {
            let h2c = tls.is_none() && ws_common::net::starts_with_h2_preface(&tcp).await;
            let stream = accept_tls(tcp, tls.as_ref()).await.ok()?;
            let h2 = h2c || stream.alpn() == Some(b"h2");
            Some((stream, h2))
        },
        async {
            smol::Timer::after(header_timeout).await;
            None
        },
    );
    let Some((stream, h2)) = handshake.await else { return };
    let watch = Arc::new(Watch::new());
    let service = {
        let watch = watch.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (ctx, watch) = (ctx.clone(), watch.clone());
            watch.busy.fetch_add(1, Ordering::Relaxed);
            async move {
                // Busy until hyper drops the response body: a download in progress is not
                // an idle connection, however long it takes.
                let done = Busy(watch);
                let mut resp = handle(&ctx, req, peer).await;
                resp.body_mut().busy = Some(done);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let io = smol_hyper::rt::FuturesIo::new(Activity::new(stream, watch.clone()));
    let served = if h2 {
        // HTTP/2 (ALPN h2 over TLS, or prior-knowledge h2c): the same service per stream.
        let conn = hyper::server::conn::http2::Builder::new(ws_common::runtime::LocalExec(ex.clone()))
            .timer(smol_hyper::rt::SmolTimer::new())
            .max_concurrent_streams(100)
            .serve_connection(io, service);
        futures_lite::FutureExt::or(conn, watch.expire(Limit::Idle(idle_timeout), peer)).await
    } else {
        let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service);
        futures_lite::FutureExt::or(conn, watch.expire(Limit::Head(header_timeout), peer)).await
    };
    if let Err(e) = served
        && !e.is_incomplete_message()
    {
        ws_common::debug!("connection from {peer}: {e}");
    }
}

/// What a connection did last, for its time limits. hyper's own header-read timeout arms a
/// timer per request, which cost ~10 % of 1 KiB requests/s here (measured A/B with wrk);
/// one timer per connection, re-armed only when it fires, checks the same rules.
struct Watch {
    /// Requests being answered (until hyper drops the response body).
    busy: AtomicUsize,
    /// Since when the connection has been waiting for a request head (start, or the end of
    /// the last response); the times are [`coarse_now`]s.
    awaiting: AtomicU64,
    last_read: AtomicU64,
    last_write: AtomicU64,
}

/// Nanoseconds on the coarse monotonic clock (a few ms of resolution, plenty for limits in
/// seconds): noted on every read and write, where reading the precise clock cost ~1 % of a
/// small request's time.
fn coarse_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Ends a request's busy time in its [`Watch`] when dropped.
/// (The response body must be `Send`, hence the atomics: all of it runs on one thread.)
struct Busy(Arc<Watch>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.note(&self.0.awaiting);
    }
}

/// How long a request being answered may move no byte (as nginx's send_timeout).
const STALL: Duration = Duration::from_secs(60);

/// The rule a connection is held to.
#[derive(Clone, Copy)]
enum Limit {
    /// HTTP/1.1: a whole request head within the limit of the last response's end or of
    /// the connection's start (so also the idle keep-alive limit); while a request is being
    /// answered, some byte moved within [`STALL`].
    Head(Duration),
    /// HTTP/2 (hyper has no idle limit for it): some byte moved within the limit.
    Idle(Duration),
}

impl Limit {
    fn period(self) -> Duration {
        match self {
            Limit::Head(d) | Limit::Idle(d) => d,
        }
    }
}

impl Watch {
    fn new() -> Self {
        let now = || AtomicU64::new(coarse_now());
        Watch { busy: AtomicUsize::new(0), awaiting: now(), last_read: now(), last_write: now() }
    }

    /// Sets `at` to now.
    fn note(&self, at: &AtomicU64) {
        at.store(coarse_now(), Ordering::Relaxed);
    }

    /// When the connection breaks its limit if nothing happens, on the [`coarse_now`] clock.
    fn deadline(&self, limit: Limit) -> u64 {
        let at = |t: &AtomicU64| t.load(Ordering::Relaxed);
        let moved = at(&self.last_read).max(at(&self.last_write));
        let nanos = |d: Duration| d.as_nanos() as u64;
        match limit {
            Limit::Head(_) if self.busy.load(Ordering::Relaxed) > 0 => moved + nanos(STALL.max(limit.period())),
            Limit::Head(d) => at(&self.awaiting) + nanos(d),
            Limit::Idle(d) => moved + nanos(d),
        }
    }

    /// Returns once the connection broke its limit (and is to be dropped).
    async fn expire(&self, limit: Limit, peer: std::net::SocketAddr) -> Result<(), hyper::Error> {
        loop {
            let (at, now) = (self.deadline(limit), coarse_now());
            if at <= now {
                ws_common::debug!("connection from {peer}: over its time limit ({:?}), closed", limit.period());
                return Ok(());
            }
            smol::Timer::after(Duration::from_nanos(at - now)).await;
        }
    }
}

/// A stream that notes in its [`Watch`] when it last read and wrote a byte (and skips the
/// read into EAGAIN after a request drained a plain socket: [`Drained`]).
struct Activity {
    inner: Drained<ws_common::net::Stream>,
    watch: Arc<Watch>,
}

impl Activity {
    fn new(inner: ws_common::net::Stream, watch: Arc<Watch>) -> Self {
        Activity { inner: Drained::stream(inner), watch }
    }
}

fn moved(r: Poll<std::io::Result<usize>>, watch: &Watch, at: &AtomicU64) -> Poll<std::io::Result<usize>> {
    if let Poll::Ready(Ok(n)) = &r
        && *n > 0
    {
        watch.note(at);
    }
    r
}

impl futures_lite::AsyncRead for Activity {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        moved(r, &self.watch, &self.watch.last_read)
    }
}

impl futures_lite::AsyncWrite for Activity {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        moved(r, &self.watch, &self.watch.last_write)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A response body: bytes in memory (errors, listings, gzip, debug) or a file read in
/// [`CHUNK`]s as hyper asks for them (constant memory for any size; the reads are inline,
/// see [`send_file`]). It carries the request's [`Busy`] guard, so the connection's watchdog
/// learns when hyper has finished with it without another boxed wrapper per request.
struct Body {
    kind: Kind,
    busy: Option<Busy>,
}

enum Kind {
    Whole(Option<Bytes>),
    File { file: std::fs::File, left: u64 },
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        Poll::Ready(match &mut this.kind {
            Kind::Whole(bytes) => bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))),
            Kind::File { left: 0, .. } => None,
            Kind::File { file, left } => {
                let mut buf = vec![0u8; CHUNK.min(*left as usize)];
                Some(match std::io::Read::read(file, &mut buf) {
                    Ok(0) => {
                        *left = 0;
                        Err(std::io::Error::other("file shrank while being sent"))
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        *left -= n as u64;
                        Ok(Frame::data(Bytes::from(buf)))
                    }
                    Err(e) => {
                        *left = 0;
                        Err(e)
                    }
                })
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Whole(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Kind::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match &self.kind {
            Kind::Whole(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Kind::File { left, .. } => *left,
        })
    }
}

fn response(status: StatusCode, kind: Kind) -> Response<Body> {
    let mut r = Response::new(Body { kind, busy: None });
    *r.status_mut() = status;
    r
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(status, Kind::Whole(Some(body.into())))
}

fn empty(status: StatusCode) -> Response<Body> {
    response(status, Kind::Whole(None))
}

async fn handle(ctx: &Ctx, req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Body> {
    let method = req.method().clone();
    // The access-log line's parts, only when it is written (not with -q).
    let logged = ws_common::log::enabled(ws_common::log::Level::Info).then(|| {
        let ua = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("-");
        (req.uri().path().to_string(), ua.to_string())
    });
    let mut resp = match &ctx.mode {
        Mode::Redirect(url) => {
            if method == Method::POST {
                empty(StatusCode::OK)
            } else {
                let mut r = empty(StatusCode::MOVED_PERMANENTLY);
                if let Ok(v) = HeaderValue::from_str(url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
        }
        Mode::Debug => debug_request(req, peer).await,
        Mode::Static { root, listing } => serve_static(root, *listing, &ctx.heads, &req).await,
    };
    resp.headers_mut().insert(header::SERVER, HeaderValue::from_static(ws_common::ws::USER_AGENT));
    if let Some((path, ua)) = logged {
        let bytes = match resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
            Some(n) => n.to_string(),
            None => hyper::body::Body::size_hint(resp.body()).exact().unwrap_or(0).to_string(),
        };
        info!("{peer} {method} {path} {} {bytes} \"{ua}\"", resp.status().as_u16());
    }
    resp
}

async fn debug_request(req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Body> {
    let mut log = format!("{peer} {} {} {:?}\n== Headers ==\n", req.method(), req.uri(), req.version());
    for (k, v) in req.headers() {
        log.push_str(&format!("{}: {}\n", k, String::from_utf8_lossy(v.as_bytes())));
    }
    // The body is logged, up to 1 MiB.
    let body = http_body_util::Limited::new(req.into_body(), 1 << 20).collect().await;
    log.push_str("== Body ==\n");
    match body {
        Ok(b) => log.push_str(&String::from_utf8_lossy(&b.to_bytes())),
        Err(e) => log.push_str(&format!("(not read: {e})")),
    }
    ws_common::log::plain(format_args!("{log}\n"));
    full(StatusCode::OK, "OK")
}

/// Decodes a request path into a path relative to the root, or `None` when it must not be
/// served: NUL, backslashes, encoded separators and `..` segments are refused outright.
pub fn relative_path(raw_path: &str) -> Option<Cow<'_, str>> {
    // The common case, nothing encoded and no empty, `.` or `..` segment, is its own answer.
    if let Some(rest) = raw_path.strip_prefix('/')
        && !rest.is_empty()
        && !rest.bytes().any(|b| matches!(b, b'%' | b'\\' | 0))
        && rest.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
    {
        return Some(Cow::Borrowed(rest));
    }
    let lower = raw_path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw_path).collect::<Vec<u8>>();
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains('\0') || decoded.contains('\\') || !decoded.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => parts.push(s),
        }
    }
    Some(Cow::Owned(if parts.is_empty() { ".".to_string() } else { parts.join("/") }))
}

/// The served folder, and the way files are opened beneath it.
struct Root {
    path: PathBuf,
    dir: std::os::fd::OwnedFd,
    beneath: bool,
}

impl Root {
    fn new(path: PathBuf) -> std::io::Result<Root> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let mut root = Root { path, dir, beneath: true };
        // openat2 arrived in Linux 5.6; without it, fall back to resolving and comparing.
        if root.open_beneath(".").is_err_and(|e| e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error())) {
            root.beneath = false;
        }
        Ok(root)
    }

    fn open_beneath(&self, rel: &str) -> std::io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let fd = rustix::fs::openat2(
            &self.dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Opens `rel` (from [`relative_path`]) if it lies under the root, symlinks resolved.
    fn open_file(&self, rel: &str) -> Option<std::fs::File> {
        if self.beneath {
            return self.open_beneath(rel).ok();
        }
        let real = self.path.join(rel).canonicalize().ok()?;
        if !real.starts_with(&self.path) {
            return None;
        }
        std::fs::File::open(real).ok()
    }
}

async fn serve_static(root: &Root, listing: bool, heads: &RefCell<Heads>, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = full(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let not_found = || full(StatusCode::NOT_FOUND, "not found\n");
    let raw_path = req.uri().path();
    let Some(rel) = relative_path(raw_path) else { return not_found() };
    let cached = heads.borrow().fresh(root, &rel);
    if let Some((head, body)) = cached {
        return send_file(Source::Cached(body), &head, req).await.unwrap_or_else(|_| not_found());
    }
    let Some(mut file) = root.open_file(&rel) else { return not_found() };
    let Ok(mut meta) = file.metadata() else { return not_found() };
    let mut name = rel.clone();
    if meta.is_dir() {
        if !raw_path.ends_with('/') {
            let mut r = empty(StatusCode::MOVED_PERMANENTLY);
            if let Ok(v) = HeaderValue::from_str(&format!("{raw_path}/")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        let index = format!("{rel}/index.html");
        match root.open_file(&index).and_then(|f| f.metadata().ok().filter(|m| m.is_file()).map(|m| (f, m))) {
            Some((f, m)) => {
                (file, meta, name) = (f, m, Cow::Owned(index));
            }
            None if listing => return list_dir(&root.path.join(&*rel), raw_path, req.method() == Method::HEAD),
            None => return not_found(),
        }
    }
    if !meta.is_file() {
        return not_found();
    }
    let head = heads.borrow_mut().get(&name, &mut file, &meta);
    let source = match &head.body {
        Some(bytes) => Source::Cached(bytes.clone()),
        None => {
            // Read whole for the cache above, or not small: stream it from the start.
            if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).is_err() {
                return not_found();
            }
            Source::File(file)
        }
    };
    match send_file(source, &head, req).await {
        Ok(r) => r,
        Err(_) => not_found(),
    }
}

/// What a file name must have escaped to be one path segment of a link.
const HREF: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'&')
    .add(b'\'');

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn list_dir(dir: &Path, raw_path: &str, head: bool) -> Response<Body> {
    let mut names: Vec<(String, bool)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().is_dir()))
            .collect(),
        Err(_) => return full(StatusCode::NOT_FOUND, "not found\n"),
    };
    names.sort();
    let title = html_escape(&percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy());
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><ul>\n"
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&name, HREF).to_string();
        html.push_str(&format!("<li><a href=\"{href}{slash}\">{}{slash}</a></li>\n", html_escape(&name)));
    }
    html.push_str("</ul></body></html>\n");
    let len = html.len();
    let mut r = if head { empty(StatusCode::OK) } else { full(StatusCode::OK, html) };
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn is_compressible(mime: &mime_guess::Mime) -> bool {
    mime.type_() == "text"
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml" | "svg")
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json")
}

/// Parses one `bytes=` range against `len`: `Ok(None)` when absent or not a single range
/// (serve the whole file), `Err(())` when unsatisfiable.
fn parse_range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// What a file version's response headers say, and for a small file its bytes.
/// Formatting the ETag and the date and guessing the type from the name took a fifth of
/// httpd's user time per 1 KiB request (perf), and opening, reading and closing the file
/// three of its seven system calls; so they are done once per file version.
struct Head {
    version: Version,
    etag: HeaderValue,
    last_modified: HeaderValue,
    modified: SystemTime,
    content_type: HeaderValue,
    compressible: bool,
    /// The whole file, when it is at most [`SMALL`] bytes and was read whole.
    body: Option<Bytes>,
}

/// Device, inode, size, and modification and change times (s, ns): a file version. The
/// change time moves on any write, rename onto the name or permission change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version([i64; 7]);

impl Version {
    fn of(meta: &std::fs::Metadata) -> Version {
        use std::os::unix::fs::MetadataExt;
        Version([
            meta.dev() as i64,
            meta.ino() as i64,
            meta.len() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ])
    }

    fn len(&self) -> u64 {
        self.0[2] as u64
    }

    // The fields' types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn of_stat(st: &rustix::fs::Stat) -> Version {
        Version([
            st.st_dev as i64,
            st.st_ino as i64,
            st.st_size as i64,
            st.st_mtime as i64,
            st.st_mtime_nsec as i64,
            st.st_ctime as i64,
            st.st_ctime_nsec as i64,
        ])
    }
}

impl Head {
    fn new(name: &str, meta: &std::fs::Metadata) -> Head {
        let value = |s: String| HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""));
        let since = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).duration_since(SystemTime::UNIX_EPOCH);
        let since = since.unwrap_or_default();
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs());
        let mime = mime_guess::from_path(name).first_or_octet_stream();
        let content_type = if mime.type_() == "text" && mime.get_param("charset").is_none() {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        Head {
            version: Version::of(meta),
            etag: value(format!("\"{:x}-{:x}\"", meta.len(), since.as_nanos())),
            last_modified: value(httpdate::fmt_http_date(modified)),
            modified,
            content_type: value(content_type),
            compressible: is_compressible(&mime),
            body: None,
        }
    }

    /// Adds the headers every answer about this file has.
    fn apply(&self, mut r: Response<Body>) -> Response<Body> {
        let h = r.headers_mut();
        h.reserve(8);
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::LAST_MODIFIED, self.last_modified.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(header::CONTENT_TYPE, self.content_type.clone());
        r
    }
}

/// Files up to this size are kept in memory with their [`Head`].
const SMALL: u64 = 64 * 1024;
/// At most this many [`Head`]s and this many bytes of small files are kept; past either,
/// the cache starts again empty.
const MAX_HEADS: usize = 4096;
const MAX_CACHED_BYTES: usize = 16 << 20;

/// The [`Head`]s of recently served files, by the name they were served under (the type
/// comes from it). An entry is used only for the same [`Version`] of the file, read anew
/// for every request, so a changed file is answered from the disk at once.
///
/// Safety of the short way ([`Heads::fresh`]): it `stat`s the name, following symlinks,
/// without `RESOLVE_BENEATH`; but it only ever answers with bytes that were read through
/// [`Root::open_file`], and only when the name still leads to that very inode, unchanged.
/// A name that now leads anywhere else misses and takes the checked way.
#[derive(Default)]
struct Heads {
    map: HashMap<String, Rc<Head>>,
    cached_bytes: usize,
}

impl Heads {
    /// The entry for `name` and the file's bytes, if it holds them and the file is
    /// unchanged: one `stat`, instead of open, `fstat`, read and close.
    fn fresh(&self, root: &Root, name: &str) -> Option<(Rc<Head>, Bytes)> {
        let head = self.map.get(name)?;
        let body = head.body.clone()?;
        let st = rustix::fs::statat(&root.dir, name, rustix::fs::AtFlags::empty()).ok()?;
        (Version::of_stat(&st) == head.version).then(|| (head.clone(), body))
    }

    /// The entry for this version of `name`, made (and `file` read, if small) when missing.
    fn get(&mut self, name: &str, file: &mut std::fs::File, meta: &std::fs::Metadata) -> Rc<Head> {
        let version = Version::of(meta);
        if let Some(head) = self.map.get(name)
            && head.version == version
        {
            return head.clone();
        }
        let mut head = Head::new(name, meta);
        if meta.len() <= SMALL {
            head.body = read_whole(file, meta.len() as usize)
                .filter(|_| file.metadata().is_ok_and(|m| Version::of(&m) == version));
        }
        let size = head.body.as_ref().map_or(0, Bytes::len);
        if self.map.len() >= MAX_HEADS || self.cached_bytes + size > MAX_CACHED_BYTES {
            self.map.clear();
            self.cached_bytes = 0;
        }
        let head = Rc::new(head);
        if let Some(old) = self.map.insert(name.to_string(), head.clone()) {
            self.cached_bytes -= old.body.as_ref().map_or(0, Bytes::len);
        }
        self.cached_bytes += size;
        head
    }
}

/// Reads exactly `len` bytes from the start of `file`, or `None` (it changed size).
fn read_whole(file: &mut std::fs::File, len: usize) -> Option<Bytes> {
    let mut buf = vec![0u8; len];
    std::io::Read::read_exact(file, &mut buf).ok()?;
    let mut probe = [0u8; 1];
    match std::io::Read::read(file, &mut probe) {
        Ok(0) => Some(Bytes::from(buf)),
        _ => None,
    }
}

/// Where a response's bytes come from.
enum Source {
    File(std::fs::File),
    Cached(Bytes),
}

// Local file system calls run inline: on page-cached files they take microseconds, while
// smol::fs would hand each one to a thread pool and back (measured: 6x fewer requests/s).
async fn send_file(source: Source, head: &Head, req: &Request<Incoming>) -> std::io::Result<Response<Body>> {
    let len = head.version.len();
    let h = req.headers();
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    let not_modified = match get(header::IF_NONE_MATCH) {
        Some(inm) => inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == head.etag.as_bytes()
        }),
        None => get(header::IF_MODIFIED_SINCE)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| head.modified <= since),
    };
    if not_modified {
        return Ok(head.apply(empty(StatusCode::NOT_MODIFIED)));
    }
    let head_only = req.method() == Method::HEAD;
    let range = match parse_range(get(header::RANGE), len) {
        Ok(r) => r,
        Err(()) => {
            let mut r = head.apply(full(StatusCode::RANGE_NOT_SATISFIABLE, ""));
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let wants_gzip =
        get(header::ACCEPT_ENCODING).is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    if range.is_none() && wants_gzip && head.compressible && len <= MAX_GZIP && len > 0 {
        let data = match source {
            Source::Cached(bytes) => bytes,
            Source::File(mut file) => {
                let mut data = Vec::with_capacity(len as usize);
                std::io::Read::read_to_end(&mut file, &mut data)?;
                data.into()
            }
        };
        let gz = smol::unblock(move || {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&data)?;
            e.finish()
        })
        .await?;
        let n = gz.len();
        let mut r = head.apply(if head_only { empty(StatusCode::OK) } else { full(StatusCode::OK, gz) });
        let h = r.headers_mut();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        return Ok(r);
    }
    let (status, start, count) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, len),
    };
    let r = match source {
        _ if head_only => empty(status),
        Source::Cached(bytes) => {
            response(status, Kind::Whole(Some(bytes.slice(start as usize..(start + count) as usize))))
        }
        Source::File(mut file) => {
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
            response(status, Kind::File { file, left: count })
        }
    };
    let mut r = head.apply(r);
    let h = r.headers_mut();
    if let Some((s, e)) = range
        && let Ok(v) = HeaderValue::try_from(format!("bytes {s}-{e}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if head.compressible {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    Ok(r)
}

declare_plugin!(Httpd);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_variants_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("site")).unwrap();
        std::fs::create_dir(base.join("site/sub")).unwrap();
        std::fs::write(base.join("site/sub/ok.txt"), "ok").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), base.join("site/escape")).unwrap();
        std::os::unix::fs::symlink("sub/ok.txt", base.join("site/inside")).unwrap();
        for beneath in [true, false] {
            let mut root = Root::new(base.join("site")).unwrap();
            root.beneath = beneath;
            let read = |p: &str| {
                relative_path(p).and_then(|r| root.open_file(&r)).map(|mut f| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                    s
                })
            };
            assert_eq!(read("/sub/ok.txt").as_deref(), Some("ok"));
            assert_eq!(read("/sub/%6fk.txt").as_deref(), Some("ok"));
            assert_eq!(read("/inside").as_deref(), Some("ok"), "a symlink within the root is fine");
            for bad in [
                "/../secret.txt",
                "/sub/../../secret.txt",
                "/%2e%2e/secret.txt",
                "/%2E%2E/secret.txt",
                "/sub%2f..%2f..%2fsecret.txt",
                "/..%5csecret.txt",
                "/sub\\..\\..\\secret.txt",
                "/sub/ok.txt%00.html",
                "/escape",
                "/missing",
            ] {
                assert_eq!(read(bad), None, "{bad} (beneath: {beneath})");
            }
        }
    }

    #[test]
    fn plain_paths_take_the_short_way_and_the_rest_are_normalised() {
        let rel = |p: &str| relative_path(p).map(|r| (matches!(r, Cow::Borrowed(_)), r.into_owned()));
        assert_eq!(rel("/a/b.txt"), Some((true, "a/b.txt".into())));
        assert_eq!(rel("/a//b.txt"), Some((false, "a/b.txt".into())));
        assert_eq!(rel("/a/./b.txt"), Some((false, "a/b.txt".into())));
        assert_eq!(rel("/dir/"), Some((false, "dir".into())));
        assert_eq!(rel("/"), Some((false, ".".into())));
        assert_eq!(rel("/a%20b"), Some((false, "a b".into())));
        assert_eq!(rel("/a/../b"), None);
        assert_eq!(rel("a/b"), None);
    }

    #[test]
    fn a_changed_file_gets_new_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page.html");
        std::fs::write(&path, "one").unwrap();
        let root = Root::new(dir.path().canonicalize().unwrap()).unwrap();
        let mut heads = Heads::default();
        let get = |heads: &mut Heads, name: &str| {
            let mut file = root.open_file("page.html").unwrap();
            let meta = file.metadata().unwrap();
            heads.get(name, &mut file, &meta)
        };
        assert!(heads.fresh(&root, "page.html").is_none(), "nothing cached yet");
        let first = get(&mut heads, "page.html");
        assert_eq!(first.content_type, "text/html; charset=utf-8");
        assert_eq!(first.body.as_deref(), Some(&b"one"[..]));
        let (again, bytes) = heads.fresh(&root, "page.html").expect("unchanged: served from memory");
        assert!(Rc::ptr_eq(&first, &again), "the same version reuses its headers and bytes");
        assert_eq!(&bytes[..], b"one");
        std::fs::write(&path, "two").unwrap();
        assert!(heads.fresh(&root, "page.html").is_none(), "same size, rewritten: not fresh");
        let changed = get(&mut heads, "page.html");
        assert_eq!(changed.body.as_deref(), Some(&b"two"[..]));
        let other_name = get(&mut heads, "page.txt");
        assert_eq!(other_name.content_type, "text/plain; charset=utf-8", "the type follows the name served");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("elsewhere"), "other").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        assert!(heads.fresh(&root, "page.html").is_none(), "the name leads to another inode now");
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(None, 100), Ok(None));
    }
}
