//! `ws curl URL`: an HTTP/1.1 client with curl's flags and curl's exit codes, on hyper 1.
//!
//! Output follows IXWebSocket's `ws curl` (the sent form/header pairs, the response headers,
//! `Upload size`, `Download size`, `Status`, then the body), without its phantom empty
//! `Content-Encoding:` header; `-s` prints the body alone, as curl does. Bodies are streamed
//! to stdout or to a temporary file renamed when complete, decoded on the fly with
//! `--compressed`, so a download of any size needs constant memory. Unlike the reference,
//! failures exit with curl's codes (it exited 0), and HTTP/1.0 and close-delimited replies
//! are read (it failed on both).

use std::ffi::{CStr, OsString};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_lite::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use ws_common::tls::TlsArgs;
use ws_common::url::Url;
use ws_common::ws::ConnectError;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// The most body held back so that the summary can come first (the guide's order).
const HOLD: usize = 4 << 20;

/// hyper's read buffer for HTTP/1 bodies.
const READ_BUF: usize = 64 * 1024;

/// curl's exit codes.
mod code {
    pub const URL: i32 = 3;
    pub const RESOLVE: i32 = 6;
    pub const CONNECT: i32 = 7;
    pub const HTTP_ERROR: i32 = 22;
    pub const WRITE: i32 = 23;
    pub const READ: i32 = 26;
    pub const TIMEOUT: i32 = 28;
    pub const TLS: i32 = 35;
    pub const REDIRECTS: i32 = 47;
    pub const PEER_FAILED: i32 = 56;
    pub const CERTIFICATE: i32 = 60;
}

/// HTTP Client
#[derive(Debug, Parser)]
#[command(name = "ws curl", about = "HTTP client with curl's flags and exit codes")]
struct Args {
    /// Connection url (http:// or https://)
    url: String,
    /// Form field k=v, urlencoded (repeatable); makes the request a POST
    #[arg(short = 'd', value_name = "TEXT")]
    data: Vec<String>,
    /// Multipart field k=v, or k=@file to upload a file (repeatable)
    #[arg(short = 'F', value_name = "TEXT")]
    form: Vec<String>,
    /// Raw request body, or @file to send a file's bytes
    #[arg(long = "data-binary", value_name = "TEXT")]
    data_binary: Option<String>,
    /// Request method (default GET, or POST when a body is given)
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// Extra header 'Name: value' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Send a HEAD request
    #[arg(short = 'I', long = "head")]
    head: bool,
    /// Follow redirects
    #[arg(short = 'L', long = "location")]
    follow: bool,
    /// Most redirects followed with -L
    #[arg(long = "max-redirects", alias = "max-redirs", default_value_t = 5, value_name = "N")]
    max_redirects: u32,
    /// Save the body under the URL's last path segment
    #[arg(short = 'O', long = "remote-name")]
    remote_name: bool,
    /// Save the body to FILE
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ask for a compressed body (gzip, deflate) and decode it
    #[arg(long = "compressed", alias = "compress")]
    compressed: bool,
    /// Seconds to connect (TCP and TLS)
    #[arg(long = "connect-timeout", default_value_t = 60.0, value_name = "S")]
    connect_timeout: f64,
    /// Seconds for the whole transfer
    #[arg(short = 'm', long = "max-time", alias = "transfer-timeout", default_value_t = 1800.0, value_name = "S")]
    max_time: f64,
    /// Show the request and response heads on stderr
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Fail (exit 22, no body) on HTTP status 400 or more
    #[arg(short = 'f', long = "fail")]
    fail: bool,
    /// Print only the body
    #[arg(short = 's', long = "silent")]
    silent: bool,
    /// Basic authentication user:password
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD")]
    user: Option<String>,
    /// Do not verify the server's certificate
    #[arg(short = 'k', long = "insecure")]
    insecure: bool,
    /// PEM CA bundle to verify the server with (same as --ca-file)
    #[arg(long = "cacert", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Use HTTP/1.1 only (by default https:// offers HTTP/2 too, by ALPN, as curl does)
    #[arg(long = "http1.1", conflicts_with_all = ["http2", "http2_prior_knowledge"])]
    http1_1: bool,
    /// Offer HTTP/2 by ALPN over https:// (the default; accepted for curl compatibility)
    #[arg(long = "http2")]
    http2: bool,
    /// Speak HTTP/2 from the first byte, without asking (h2c over http://, h2 over https://)
    #[arg(long = "http2-prior-knowledge")]
    http2_prior_knowledge: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

fn fail(code: i32, msg: impl std::fmt::Display) -> Error {
    Error::with_code(code, msg.to_string())
}

#[derive(Debug, Default)]
struct Curl;

impl Plugin for Curl {
    const NAME: &'static CStr = c"curl";
    const SUMMARY: &'static CStr = c"HTTP Client";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        if args.cacert.is_some() {
            args.tls.ca_file = args.cacert.clone();
        }
        args.tls.verify_none |= args.insecure;
        args.tls.client_config(&[])?;
        let url = parse_url(&args.url)?;
        let headers = ws_common::headers::parse_headers(&args.headers)?;
        let body = build_body(&args)?;
        let deadline = Instant::now() + Duration::from_secs_f64(args.max_time.max(0.001));
        ws_common::runtime::block_on(|ex| async move {
            let work = fetch(&ex, &args, url, headers, body);
            work.or(async {
                smol::Timer::at(deadline).await;
                Err(fail(code::TIMEOUT, format!("operation timed out after {} s", args.max_time)))
            })
            .await
        })
    }
}

fn parse_url(raw: &str) -> Result<Url, Error> {
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    let url = Url::parse(&with_scheme).map_err(|e| fail(code::URL, format!("malformed URL '{raw}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(code::URL, format!("unsupported protocol '{}' in '{raw}'", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail(code::URL, format!("no host in URL '{raw}'")));
    }
    Ok(url)
}

/// The request body and its content type, from -d, -F and --data-binary.
struct Body {
    bytes: Vec<u8>,
    content_type: Option<String>,
}

fn split_pair(raw: &str) -> Result<(&str, &str), Error> {
    raw.split_once('=').ok_or_else(|| Error::usage(format!("form field '{raw}' is not name=value")))
}

fn build_body(args: &Args) -> Result<Option<Body>, Error> {
    if let Some(raw) = &args.data_binary {
        let bytes = match raw.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|e| fail(code::READ, format!("cannot read {path}: {e}")))?,
            None => raw.as_bytes().to_vec(),
        };
        return Ok(Some(Body { bytes, content_type: Some("application/x-www-form-urlencoded".into()) }));
    }
    if !args.form.is_empty() {
        let boundary = format!("------------------------{}", &ws_common::transfer::new_id()[..16]);
        let mut out = Vec::new();
        for raw in &args.form {
            let (k, v) = split_pair(raw)?;
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match v.strip_prefix('@') {
                Some(path) => {
                    let data = std::fs::read(path).map_err(|e| fail(code::READ, format!("cannot read {path}: {e}")))?;
                    let name = std::path::Path::new(path)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                            .as_bytes(),
                    );
                    out.extend_from_slice(&data);
                }
                None => {
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}").as_bytes(),
                    );
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        for raw in &args.data {
            let (k, v) = split_pair(raw)?;
            out.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
            );
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        return Ok(Some(Body { bytes: out, content_type: Some(format!("multipart/form-data; boundary={boundary}")) }));
    }
    if !args.data.is_empty() {
        const SET: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
        let mut pairs = Vec::new();
        for raw in &args.data {
            let (k, v) = split_pair(raw)?;
            pairs.push(format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, SET),
                percent_encoding::utf8_percent_encode(v, SET)
            ));
        }
        return Ok(Some(Body {
            bytes: pairs.join("&").into_bytes(),
            content_type: Some("application/x-www-form-urlencoded".into()),
        }));
    }
    Ok(None)
}

fn connect_error(e: ConnectError, timeout: f64) -> Error {
    match e {
        ConnectError::Resolve { .. } => fail(code::RESOLVE, e),
        ConnectError::Connect { .. } => fail(code::CONNECT, e),
        ConnectError::Timeout(_) => fail(code::TIMEOUT, format!("connection timed out after {timeout} s")),
        ConnectError::Tls { ref reason, .. } if reason.to_ascii_lowercase().contains("certificate") => {
            fail(code::CERTIFICATE, e)
        }
        ConnectError::Tls { .. } => fail(code::TLS, e),
        other => fail(code::CONNECT, other),
    }
}

/// Prints a line unless `-s`.
macro_rules! say {
    ($args:expr, $($t:tt)*) => { if !$args.silent { ws_common::log::plain(format_args!($($t)*)); } };
}

async fn fetch(
    ex: &ws_common::runtime::Spawner,
    args: &Args,
    mut url: Url,
    headers: Vec<(String, String)>,
    body: Option<Body>,
) -> Result<(), Error> {
    for raw in args.form.iter().chain(&args.data) {
        if let Ok((k, v)) = split_pair(raw) {
            say!(args, "{k}: {v}");
        }
    }
    for (k, v) in &headers {
        say!(args, "{k}: {v}");
    }
    let mut method = match (&args.method, args.head, &body) {
        (Some(m), _, _) => Method::from_bytes(m.as_bytes()).map_err(|_| Error::usage(format!("bad method {m}")))?,
        (None, true, _) => Method::HEAD,
        (None, false, Some(_)) => Method::POST,
        (None, false, None) => Method::GET,
    };
    let mut body = body;
    let mut redirects = 0;
    loop {
        let connect_timeout = Duration::from_secs_f64(args.connect_timeout.max(0.001));
        let alpn: &[&[u8]] = if args.http1_1 { &[b"http/1.1"] } else { &[b"h2", b"http/1.1"] };
        let stream = ws_common::ws::open_stream(&url, &args.tls, alpn)
            .or(async {
                smol::Timer::after(connect_timeout).await;
                Err(ConnectError::Timeout(connect_timeout))
            })
            .await
            .map_err(|e| connect_error(e, args.connect_timeout))?;
        let h2 = stream.alpn() == Some(b"h2") || (args.http2_prior_knowledge && !args.http1_1);
        let io = smol_hyper::rt::FuturesIo::new(stream);
        // The connection's own task drives its I/O while this one sends and reads.
        let drive = |conn: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| ex.spawn(conn).detach();
        let mut sender = if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(ws_common::runtime::LocalExec(ex.clone()), io)
                .await
                .map_err(|e| fail(code::CONNECT, e))?;
            drive(Box::pin(async move { _ = conn.await }));
            Sender::H2(sender)
        } else {
            // A fixed read buffer: smol-hyper zeroes the whole free part of hyper's buffer
            // before each read, and hyper's adaptive buffer grows to ~400 KiB (measured: 18 %
            // of a download's time in memset).
            let (sender, conn) = hyper::client::conn::http1::Builder::new()
                .read_buf_exact_size(Some(READ_BUF))
                .handshake(io)
                .await
                .map_err(|e| fail(code::CONNECT, e))?;
            drive(Box::pin(async move { _ = conn.await }));
            Sender::H1(sender)
        };
        if args.verbose && h2 {
            eprintln!("* using HTTP/2");
        }
        let req = build_request(args, &url, &method, &headers, body.as_ref(), h2)?;
        let upload = request_size(&req, body.as_ref());
        if args.verbose {
            verbose_request(&req);
        }
        let resp = sender.send_request(req).await.map_err(|e| fail(code::PEER_FAILED, format!("no response: {e}")))?;
        let status = resp.status();
        if args.verbose {
            eprintln!("< {} {}", version_name(resp.version()), status);
            for (k, v) in resp.headers() {
                eprintln!("< {}: {}", k, String::from_utf8_lossy(v.as_bytes()));
            }
        }
        if args.follow && status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let Some(location) = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
                return Err(fail(code::PEER_FAILED, "redirect without a Location header"));
            };
            if redirects >= args.max_redirects {
                return Err(fail(code::REDIRECTS, format!("maximum ({}) redirects followed", args.max_redirects)));
            }
            redirects += 1;
            url = url.join(location).map_err(|e| fail(code::URL, format!("bad redirect to '{location}': {e}")))?;
            // As curl: 303 always, and 301/302 for a POST, go on as GET without a body.
            if status == StatusCode::SEE_OTHER
                || (method == Method::POST && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
            {
                method = if method == Method::HEAD { Method::HEAD } else { Method::GET };
                body = None;
            }
            continue;
        }
        if args.fail && status.as_u16() >= 400 {
            return Err(fail(code::HTTP_ERROR, format!("the requested URL returned error: {}", status.as_u16())));
        }
        return deliver(args, &url, resp, upload, method == Method::HEAD).await;
    }
}

/// One connection's request sender, by protocol.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send_request(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

fn build_request(
    args: &Args,
    url: &Url,
    method: &Method,
    headers: &[(String, String)],
    body: Option<&Body>,
    h2: bool,
) -> Result<Request<Full<Bytes>>, Error> {
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    // HTTP/2 carries the scheme and authority in the request itself (:scheme, :authority),
    // not in a Host header.
    let host_header = ws_common::url::host_header(url);
    if h2 {
        path = format!("{}://{host_header}{path}", url.scheme());
    }
    let bytes = if *method == Method::HEAD {
        Bytes::new()
    } else {
        body.map(|b| Bytes::from(b.bytes.clone())).unwrap_or_default()
    };
    let mut req =
        Request::builder().method(method.clone()).uri(path).body(Full::new(bytes)).map_err(|e| fail(code::URL, e))?;
    let set = |h: &mut hyper::HeaderMap, k: HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    if h2 {
        *req.version_mut() = hyper::Version::HTTP_2;
    } else {
        set(req.headers_mut(), header::HOST, &host_header);
    }
    let h = req.headers_mut();
    set(h, header::USER_AGENT, concat!("ws-curl/", env!("CARGO_PKG_VERSION")));
    set(h, header::ACCEPT, "*/*");
    if args.compressed {
        set(h, header::ACCEPT_ENCODING, "gzip, deflate");
    }
    if let Some(user) = &args.user {
        use base64::Engine;
        set(h, header::AUTHORIZATION, &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user)));
    }
    if let Some(b) = body
        && let Some(ct) = &b.content_type
    {
        set(h, header::CONTENT_TYPE, ct);
    }
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::usage(format!("bad header {k}: {e}")))?;
        set(h, name, v);
    }
    Ok(req)
}

fn request_size(req: &Request<Full<Bytes>>, body: Option<&Body>) -> usize {
    let head: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    req.method().as_str().len() + req.uri().to_string().len() + 12 + head + 2 + body.map_or(0, |b| b.bytes.len())
}

/// As curl prints them: `HTTP/1.1`, `HTTP/2`.
fn version_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn verbose_request(req: &Request<Full<Bytes>>) {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    eprintln!("> {} {target} {}", req.method(), version_name(req.version()));
    for (k, v) in req.headers() {
        eprintln!("> {}: {}", k, String::from_utf8_lossy(v.as_bytes()));
    }
    eprintln!(">");
}

/// Where the body goes.
enum Sink {
    Stdout,
    /// A regular file (or a new one): written to a temporary name beside it, renamed when
    /// complete.
    File {
        tmp: tempfile::NamedTempFile,
        path: PathBuf,
    },
    /// Anything else that exists (`/dev/null`, a FIFO, a terminal): written in place. Renaming
    /// a temporary file over it would replace the device with a regular file.
    Special(std::fs::File),
}

fn output_path(args: &Args, url: &Url) -> Result<Option<PathBuf>, Error> {
    if let Some(o) = &args.output {
        return Ok(Some(o.clone()));
    }
    if !args.remote_name {
        return Ok(None);
    }
    let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    match ws_common::transfer::safe_file_name(&decoded) {
        Some(name) => Ok(Some(PathBuf::from(name))),
        None => Err(fail(code::WRITE, format!("cannot take a file name from {url}: use --output FILE"))),
    }
}

async fn deliver(
    args: &Args,
    url: &Url,
    resp: hyper::Response<hyper::body::Incoming>,
    upload: usize,
    head: bool,
) -> Result<(), Error> {
    let status = resp.status();
    let encoding =
        resp.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let content_length: Option<u64> =
        resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let content_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut lines: Vec<String> = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{}: {}", ws_common::ws::header_case(k.as_str()), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    lines.sort_by_key(|l| l.to_ascii_lowercase());
    let target = output_path(args, url)?;
    let mut sink = match &target {
        None => Sink::Stdout,
        Some(path) if path.as_os_str() == "-" => Sink::Stdout,
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
            Sink::Special(f)
        }
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".ws-curl-")
                .tempfile_in(dir)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
            Sink::File { tmp, path: path.clone() }
        }
    };
    let binary_to_terminal = matches!(sink, Sink::Stdout)
        && std::io::stdout().is_terminal()
        && !(content_type.starts_with("text/")
            || content_type.contains("json")
            || content_type.contains("xml")
            || content_type.is_empty());
    let mut downloaded: u64 = 0;
    let mut body = resp.into_body();
    // Decoding happens as bytes arrive; the writer is the sink.
    let decode = args.compressed && matches!(encoding.as_deref(), Some("gzip" | "x-gzip" | "deflate"));
    let to_stdout = matches!(sink, Sink::Stdout);
    let mut out: Box<dyn Write> = match &mut sink {
        Sink::Stdout => Box::new(std::io::stdout().lock()),
        Sink::File { tmp, .. } => Box::new(std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut())),
        Sink::Special(f) => Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)),
    };
    if decode {
        out = match encoding.as_deref() {
            Some("deflate") => Box::new(flate2::write::ZlibDecoder::new(out)),
            _ => Box::new(flate2::write::MultiGzDecoder::new(out)),
        };
    }
    let print_body = !head && !binary_to_terminal;
    if !args.silent {
        for l in &lines {
            say!(args, "{l}");
        }
        say!(args, "Upload size: {upload}");
    }
    // A bar on a terminal when the body goes to a file; with -v, a line per 10 % otherwise.
    let progress = (!head).then(|| {
        let log: Option<ws_common::progress::LogFn> = args.verbose.then(|| {
            Box::new(|done: u64, total: u64| eprintln!("* {done} of {total} bytes received ({}%)", done * 100 / total))
                as ws_common::progress::LogFn
        });
        ws_common::progress::Progress::new(content_length, !args.silent && !to_stdout, log)
    });
    let mut started = false;
    // The guide's order is the summary (Download size, Status), then `payload: ` and the
    // body; the size is known only at the end, so a body printed with the summary is held
    // back up to HOLD bytes. A bigger one streams, and its summary follows it.
    let mut held: Option<Vec<u8>> = (to_stdout && !args.silent && print_body).then(Vec::new);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(code::PEER_FAILED, format!("failure receiving the body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        downloaded += data.len() as u64;
        if let Some(p) = &progress {
            p.set(downloaded);
        }
        if let Some(h) = &mut held {
            if h.len() + data.len() <= HOLD {
                h.extend_from_slice(&data);
                continue;
            }
            let h = held.take().unwrap_or_default();
            out.write_all(b"payload: ").and_then(|_| out.write_all(&h)).map_err(|e| write_error(&e))?;
            started = true;
        }
        if print_body {
            if !started && to_stdout && !args.silent {
                let _ = out.write_all(b"payload: ");
            }
            started = true;
            out.write_all(&data).map_err(|e| write_error(&e))?;
        }
    }
    let summary_first = held.is_some();
    if let Some(h) = held.take() {
        say!(args, "Download size: {downloaded}");
        say!(args, "Status: {}", status.as_u16());
        if !h.is_empty() {
            out.write_all(b"payload: ").and_then(|_| out.write_all(&h)).map_err(|e| write_error(&e))?;
            started = true;
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }
    if args.verbose {
        eprintln!("* {downloaded} bytes received");
    }
    out.flush().map_err(|e| write_error(&e))?;
    drop(out);
    match sink {
        Sink::File { tmp, path } => {
            tmp.persist(&path)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {}", path.display(), e.error)))?;
            say!(args, "Writing to disk: {}", path.display());
        }
        Sink::Stdout if started && !args.silent => say!(args, ""),
        _ => {}
    }
    if binary_to_terminal && downloaded > 0 {
        eprintln!(
            "Binary output can mess up your terminal. Use the -O flag to save the file to disk, or --output FILE."
        );
    }
    if !summary_first {
        say!(args, "Download size: {downloaded}");
        say!(args, "Status: {}", status.as_u16());
    }
    Ok(())
}

fn write_error(e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::exit(0);
    }
    fail(code::WRITE, format!("failure writing output: {e}"))
}

declare_plugin!(Curl);
