//! `ws httpd`: a static HTTP/1.1 server (hyper 1 on the workers' event loops), with IXWebSocket's redirect (`-L`)
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
//! are also kept in memory (16 MiB in all) with their headers, and answered from there until
//! the kernel reports a change (inotify, [`fresh`]; where it cannot watch, while one `stat`
//! per request shows the same file unchanged; see [`Heads`]). `Last-Modified` and
//! `ETag` answer revalidation with 304; one `Range` gets 206 or 416; compressible files up to
//! 8 MiB are gzipped when the client accepts it; connections are kept alive, with a header
//! read timeout and a connection limit.
//!
//! Modules: [`path`] (path safety), [`cache`] (per-file-version headers and small files),
//! [`fresh`] (their freshness from inotify),
//! [`responses`] (bodies, files, ranges, gzip, listings), [`watch`] (time limits),
//! [`policy`] (CORS, basic auth, extra headers, the single-page app's fallback, log format),
//! [`compress`] (brotli, zstd and gzip, on the fly and precompressed), [`upload`] (`PUT` and
//! multipart `POST` with `--upload`: temporary file, rename, never outside the root).

use std::borrow::Cow;
use std::cell::RefCell;
use std::convert::Infallible;
use std::ffi::{CStr, OsString};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use futures_lite::AsyncWriteExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ws_common::net::{ListenArgs, Peer, Transport, accept_tls};
use ws_common::tls::TlsArgs;
use ws_common::{info, warning};
use ws_plugin_api::{Error, Plugin, declare_plugin};

mod cache;
mod compress;
mod fresh;
mod path;
mod policy;
mod responses;
mod upload;
mod watch;

use cache::Heads;
use path::{Root, relative_path};
use responses::{Body, Source, empty, full, list_dir, send_file};
use watch::{Activity, Busy, Limit, Watch};

/// HTTP server
#[derive(Debug, Parser)]
#[command(
    name = "ws httpd",
    about = "Static HTTP server (GET/HEAD; PUT/POST uploads with --upload), with redirect (-L) and debug (-D) modes"
)]
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
    #[command(flatten)]
    policy: policy::PolicyArgs,
    #[command(flatten)]
    upload: upload::UploadArgs,
    #[command(flatten)]
    workers: ws_common::workers::WorkerArgs,
}

enum Mode {
    Static { root: Root, listing: bool, upload: Option<upload::Uploads> },
    Redirect(String),
    Debug,
}

struct Ctx {
    mode: Mode,
    heads: RefCell<Heads>,
    policy: policy::Policy,
}

#[derive(Debug, Default)]
struct Httpd;

impl Plugin for Httpd {
    const NAME: &'static CStr = c"httpd";
    const SUMMARY: &'static CStr = c"HTTP server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        ws_common::log::set_verbosity(false, args.quiet);
        // Checked once here (bad flags fail before anything listens); each worker then builds
        // its own (its caches are its own: nothing shared on the hot path).
        let ctx = context(&args)?;
        if matches!(ctx.mode, Mode::Static { upload: Some(_), .. }) && !ctx.policy.has_auth() {
            warning!("--upload without --auth: anyone who can reach this server can write files under its root");
        }
        drop(ctx);
        let tls = args.tls.server_config(&[b"h2", b"http/1.1"])?;
        ws_common::log::background();
        let workers = args.workers.count();
        let sockets = ws_common::workers::bind(&args.listen, workers)?;
        let active = Arc::new(AtomicUsize::new(0));
        let (args, tls, active, sockets) = (&args, &tls, &active, &sockets);
        ws_common::workers::run(workers, |i| {
            let ctx = Rc::new(context(args)?);
            ws_common::runtime::block_on(|ex| async move {
                let listener = sockets.take(i)?;
                let header_timeout = Duration::from_secs(args.header_timeout.max(1));
                let idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
                let max = args.max_connections;
                loop {
                    let (conn, peer) = listener.accept().await;
                    let (ctx, tls, ex2, active) = (ctx.clone(), tls.clone(), ex.clone(), active.clone());
                    ex.spawn(async move {
                        // The limit is the server's: every worker counts in `active`.
                        if active.fetch_add(1, Ordering::Relaxed) >= max {
                            active.fetch_sub(1, Ordering::Relaxed);
                            warning!("refused {peer}: more than {max} connections");
                            let mut conn = conn;
                            let _ = conn
                                .write_all(
                                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                )
                                .await;
                            return;
                        }
                        serve_connection(ctx, conn, peer, tls, (header_timeout, idle_timeout), &ex2).await;
                        active.fetch_sub(1, Ordering::Relaxed);
                    })
                    .detach();
                }
                #[allow(unreachable_code)]
                Ok::<(), Error>(())
            })
        })
    }
}

/// What a worker serves with: the mode, its caches and the flags' policy.
fn context(args: &Args) -> Result<Ctx, Error> {
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
            upload: upload::Uploads::new(&args.upload),
        }
    };
    let uploads = matches!(mode, Mode::Static { upload: Some(_), .. });
    let policy = policy::Policy::new(&args.policy, uploads)?;
    Ok(Ctx { mode, heads: RefCell::default(), policy })
}

async fn serve_connection(
    ctx: Rc<Ctx>,
    conn: Transport,
    peer: Peer,
    tls: Option<std::sync::Arc<ws_common::tls::ServerConfig>>,
    (header_timeout, idle_timeout): (Duration, Duration),
    ex: &ws_common::runtime::Spawner,
) {
    let handshake = futures_lite::FutureExt::or(
        async {
            let h2c = match &conn {
                Transport::Tcp(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    tls.is_none() && ws_common::net::starts_with_h2_preface(tcp).await
                }
                // No peek on a Unix socket in smol: HTTP/2 there takes TLS with ALPN.
                Transport::Unix(_) => false,
            };
            let stream = accept_tls(conn, tls.as_ref()).await.ok()?;
            let h2 = h2c || stream.alpn() == Some(b"h2");
            Some((stream, h2))
        },
        async {
            ws_common::runtime::Timer::after(header_timeout).await;
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
    let io = ws_common::hyper_io::HyperIo(Activity::new(stream, watch.clone()));
    let served = if h2 {
        // HTTP/2 (ALPN h2 over TLS, or prior-knowledge h2c): the same service per stream.
        let conn = hyper::server::conn::http2::Builder::new(ws_common::runtime::LocalExec(ex.clone()))
            .timer(ws_common::runtime::LoopTimer)
            .max_concurrent_streams(100)
            .max_send_buf_size(responses::H2_SEND_BUF)
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

async fn handle(ctx: &Ctx, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let method = req.method().clone();
    // The access-log line's parts, only when it is written (not with -q).
    let logged = ws_common::log::enabled(ws_common::log::Level::Info).then(|| {
        let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
        (req.uri().path().to_string(), text(header::USER_AGENT), text(header::REFERER), target, req.version())
    });
    let mut user = None;
    let mut resp = if let Some(preflight) = ctx.policy.preflight(&req) {
        preflight
    } else {
        match ctx.policy.authorize(&req).await {
            Err(refused) => refused,
            Ok(who) => {
                user = who;
                respond(ctx, req, peer).await
            }
        }
    };
    ctx.policy.decorate(&mut resp);
    resp.headers_mut().insert(header::SERVER, HeaderValue::from_static(ws_common::ws::USER_AGENT));
    if let Some((path, ua, referer, target, version)) = logged {
        let bytes = match resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
            Some(n) => n.to_string(),
            None => hyper::body::Body::size_hint(resp.body()).exact().unwrap_or(0).to_string(),
        };
        let status = resp.status().as_u16();
        if ctx.policy.combined_log {
            let when = chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z");
            ws_common::log::plain(format_args!(
                "{} - {} [{when}] \"{method} {target} {version:?}\" {status} {bytes} \"{referer}\" \"{ua}\"",
                peer.ip(),
                user.as_deref().unwrap_or("-")
            ));
        } else {
            info!("{peer} {method} {path} {status} {bytes} \"{ua}\"");
        }
    }
    resp
}

/// The answer of the server's mode, with the single-page app's fallback for a missing page.
async fn respond(ctx: &Ctx, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let method = req.method().clone();
    match &ctx.mode {
        _ if !host_is_valid(&req) => {
            full(StatusCode::BAD_REQUEST, "bad request: an HTTP/1.1 request needs exactly one Host header\n")
        }
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
        // Boxed: the futures of the rarer answers stay out of every request's future, which
        // is moved whole into place per request (see serve_static).
        Mode::Debug => Box::pin(debug_request(req, peer)).await,
        Mode::Static { root, upload: Some(uploads), .. } if method == Method::PUT => {
            Box::pin(uploads.put(root, req)).await
        }
        Mode::Static { root, upload: Some(uploads), .. } if method == Method::POST => {
            Box::pin(uploads.post(root, req)).await
        }
        Mode::Static { root, listing, upload } => {
            let listing = Listing { on: *listing, upload_form: upload.is_some() };
            let resp = serve_static(root, listing, &ctx.heads, &req, req.uri().path()).await;
            match ctx.policy.wants_fallback(&req) {
                Some(page) if resp.status() == StatusCode::NOT_FOUND => {
                    let listing = Listing { on: false, upload_form: false };
                    serve_static(root, listing, &ctx.heads, &req, &format!("/{page}")).await
                }
                _ => resp,
            }
        }
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host header, or with more than one, is
/// answered 400 (HTTP/2 carries `:authority` instead; HTTP/1.0 may omit it).
fn host_is_valid(req: &Request<Incoming>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match req.version() {
        hyper::Version::HTTP_11 => hosts.next().is_some() && hosts.next().is_none(),
        _ => hosts.nth(1).is_none(),
    }
}

async fn debug_request(req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let mut log = format!("{peer} {} {} {:?}\n== Headers ==\n", req.method(), req.uri(), req.version());
    // What the client sent is escaped: its CR, ESC or OSC must not drive the terminal.
    let escape = |b: &[u8]| ws_common::log::escape_controls(&String::from_utf8_lossy(b), true).into_owned();
    for (k, v) in req.headers() {
        log.push_str(&format!("{}: {}\n", k, escape(v.as_bytes())));
    }
    // The body is logged, up to 1 MiB.
    let body = http_body_util::Limited::new(req.into_body(), 1 << 20).collect().await;
    log.push_str("== Body ==\n");
    match body {
        Ok(b) => log.push_str(&escape(&b.to_bytes())),
        Err(e) => log.push_str(&format!("(not read: {e})")),
    }
    ws_common::log::plain(format_args!("{log}\n"));
    full(StatusCode::OK, "OK")
}

/// Whether folders without an index are listed, and with an upload form.
#[derive(Clone, Copy)]
struct Listing {
    on: bool,
    upload_form: bool,
}

async fn serve_static(
    root: &Root,
    listing: Listing,
    heads: &RefCell<Heads>,
    req: &Request<Incoming>,
    raw_path: &str,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = full(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        let allow = if listing.upload_form { "GET, HEAD, PUT, POST" } else { "GET, HEAD" };
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    let not_found = || full(StatusCode::NOT_FOUND, "not found\n");
    let Some(rel) = relative_path(raw_path) else { return not_found() };
    let cached = heads.borrow_mut().fresh(root, &rel);
    if let Some((head, body)) = cached {
        if head.compressible
            && let Some(r) = responses::sibling(root, &rel, &head, req)
        {
            return r;
        }
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
            None if listing.on => {
                let head = req.method() == Method::HEAD;
                return list_dir(&root.path.join(&*rel), raw_path, head, listing.upload_form);
            }
            None => return not_found(),
        }
    }
    if !meta.is_file() {
        return not_found();
    }
    let head = heads.borrow_mut().get(root, &name, &mut file, &meta);
    if head.compressible
        && let Some(r) = responses::sibling(root, &name, &head, req)
    {
        return r;
    }
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

declare_plugin!(Httpd);
