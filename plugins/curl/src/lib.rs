//! `ws curl URL`: an HTTP/1.1 client with curl's flags and curl's exit codes, on hyper 1.
//!
//! Output follows IXWebSocket's `ws curl` (the sent form/header pairs, the response headers,
//! `Upload size`, `Download size`, `Status`, then the body), without its phantom empty
//! `Content-Encoding:` header; with any of curl's output flags (`-s`, `-i`, `-I`, `-D`, `-w`)
//! it prints what curl prints. Request bodies follow curl's rules (`-d` as given,
//! `--data-urlencode`, `--json`, `-G`). Bodies are streamed
//! to stdout or to a temporary file renamed when complete, decoded on the fly with
//! `--compressed`, so a download of any size needs constant memory. Unlike the reference,
//! failures exit with curl's codes (it exited 0), and HTTP/1.0 and close-delimited replies
//! are read (it failed on both).
//!
//! Modules: [`args`] (flags, exit codes, the URL), [`request`] (body, head, sender),
//! [`redirects`] (what `-L` follows and what it carries along), [`output`] (layout, files,
//! decoding).

use std::ffi::{CStr, OsString};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use hyper::header;
use hyper::{Method, StatusCode};
use ws_common::dial::Via;
use ws_common::url::Url;
use ws_common::ws::ConnectError;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Prints a line of the reference's layout (not with `-s` or curl's other output flags).
macro_rules! say {
    ($args:expr, $($t:tt)*) => { if !$args.curl_output() { ws_common::log::plain(format_args!($($t)*)); } };
}

mod args;
mod cookies;
mod decode;
mod output;
mod redirects;
mod request;
mod retry;

use args::{Args, code, fail, parse_url};
use output::deliver;
use request::{
    Body, Sender, build_body, build_request, connect_error, request_size, split_pair, verbose_request, version_name,
};

/// hyper's read buffer for HTTP/1 bodies.
const READ_BUF: usize = 64 * 1024;

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
        let family = match (args.ipv4, args.ipv6) {
            (true, _) => Some(ws_common::dial::Family::V4),
            (_, true) => Some(ws_common::dial::Family::V6),
            _ => None,
        };
        args.overrides =
            ws_common::dial::Overrides::parse(&args.resolve, &args.connect_to, family).map_err(Error::usage)?;
        args.load_netrc()?;
        let url = parse_url(&args.url)?;
        args.resume_from = match args.continue_at.as_deref() {
            None => 0,
            // Where the output file ends (none yet, or stdout: from the start).
            Some("-") => output::output_path(&args, &url)?
                .filter(|p| p.as_os_str() != "-")
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len()),
            Some(n) => n.parse().map_err(|_| Error::usage(format!("-C: bad offset '{n}' (a number, or -)")))?,
        };
        let headers = ws_common::headers::parse_headers(&args.headers)?;
        let body = build_body(&args)?;
        let mut jar = cookies::Jar::from_args(&args)?;
        let mut retry = retry::Policy::from_args(&args);
        let started = Instant::now();
        ws_common::runtime::block_on(|ex| async move {
            let done = loop {
                // -m bounds each attempt, as in curl.
                let deadline = Instant::now() + Duration::from_secs_f64(args.max_time.max(0.001));
                let attempt = fetch(&ex, &args, url.clone(), headers.clone(), body.clone(), jar.as_mut(), &mut retry)
                    .or(async {
                        ws_common::runtime::Timer::at(deadline).await;
                        Err(fail(code::TIMEOUT, format!("operation timed out after {} s", args.max_time)))
                    })
                    .await;
                let wait = match &attempt {
                    Ok(Outcome::Done) => break Ok(()),
                    Ok(Outcome::RetryIn(wait)) => Some(*wait),
                    Err(e) => retry.for_error(e).and_then(|why| retry.next(why, None)),
                };
                match wait {
                    Some(wait) => {
                        ws_common::runtime::Timer::after(wait).await;
                    }
                    None => break attempt.map(drop),
                }
            };
            // The jar is written however the transfer ended, as curl writes it; so is -w.
            let saved = jar.as_ref().map_or(Ok(()), cookies::Jar::save);
            // (-f's HTTP errors printed theirs with the status.)
            if let (Err(e), Some(format)) = (&done, &args.write_out)
                && e.exit_code() != code::HTTP_ERROR
            {
                output::write_out_failure(format, &url, e, started, 0)?;
            }
            done.and(saved)
        })
    }
}

async fn fetch(
    ex: &ws_common::runtime::Spawner,
    args: &Args,
    mut url: Url,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    mut jar: Option<&mut cookies::Jar>,
    retry: &mut retry::Policy,
) -> Result<Outcome, Error> {
    for raw in args.form.iter().chain(&args.data) {
        if let Ok((k, v)) = split_pair(raw) {
            say!(args, "{k}: {v}");
        }
    }
    for (k, v) in &headers {
        say!(args, "{k}: {v}");
    }
    let mut body = body;
    // -G: the data goes into the query string instead.
    if args.get
        && let Some(b) = body.take()
    {
        let data = String::from_utf8_lossy(&b.bytes).into_owned();
        let query = match url.query() {
            Some(old) if !old.is_empty() => format!("{old}&{data}"),
            _ => data,
        };
        url.set_query(Some(&query));
    }
    // -T FILE to a URL ending in /: the file's name is appended, as curl does.
    if let Some(file) = args.upload_file.as_ref().filter(|f| f.as_os_str() != "-")
        && url.path().ends_with('/')
        && let Some(name) = file.file_name()
    {
        let encoded: String =
            percent_encoding::utf8_percent_encode(&name.to_string_lossy(), percent_encoding::NON_ALPHANUMERIC)
                .collect();
        url = url.join(&encoded).map_err(|e| fail(code::URL, e))?;
    }
    let started = std::time::Instant::now();
    let mut method = match (&args.method, args.head, &body) {
        (Some(m), _, _) => Method::from_bytes(m.as_bytes()).map_err(|_| Error::usage(format!("bad method {m}")))?,
        (None, true, _) => Method::HEAD,
        (None, false, Some(b)) if b.upload.is_some() => Method::PUT,
        (None, false, Some(_)) => Method::POST,
        (None, false, None) => Method::GET,
    };
    let mut redirects = 0;
    let origin = url.clone();
    loop {
        let connect_timeout = Duration::from_secs_f64(args.connect_timeout.max(0.001));
        let alpn: &[&[u8]] = if args.http1_1 { &[b"http/1.1"] } else { &[b"h2", b"http/1.1"] };
        let listed = |list: &str| ws_common::proxy::bypassed(list, url.host_str().unwrap_or(""));
        let proxy = if args.noproxy.as_deref().is_some_and(listed) { Some("") } else { args.proxy.as_deref() };
        let via = Via::for_url(&url, proxy, args.unix_socket.as_deref()).map_err(|e| fail(code::PROXY, e))?;
        // As curl: an http:// URL goes to an HTTP proxy as a request in absolute form
        // (`GET http://host/path`), not through a CONNECT tunnel, which proxies commonly
        // allow to port 443 alone; https:// tunnels, so TLS stays end to end.
        let forward = match &via {
            Via::Proxy(p) if p.kind == ws_common::proxy::Kind::Http && url.scheme() == "http" => Some(p.clone()),
            _ => None,
        };
        let (dial_url, dial_via) = match &forward {
            Some(p) => (Url::parse(&format!("http://{}/", p.addr())).map_err(|e| fail(code::PROXY, e))?, Via::Direct),
            None => (url.clone(), via),
        };
        let (stream, phases) =
            ws_common::dial::open_stream_timed(&dial_url, &args.tls, alpn, &dial_via, &args.overrides)
                .or(async {
                    ws_common::runtime::Timer::after(connect_timeout).await;
                    Err(ConnectError::Timeout(connect_timeout))
                })
                .await
                .map_err(|e| connect_error(e, args.connect_timeout))?;
        let h2 = forward.is_none() && (stream.alpn() == Some(b"h2") || (args.http2_prior_knowledge && !args.http1_1));
        // The connection's own task drives its I/O while this one sends and reads.
        // Its error (a TLS alert, a reset) is kept: the request itself only learns "canceled".
        let conn_error: std::rc::Rc<std::cell::RefCell<Option<String>>> = Default::default();
        let drive = |conn: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), hyper::Error>>>>| {
            let slot = conn_error.clone();
            ex.spawn(async move {
                if let Err(e) = conn.await {
                    *slot.borrow_mut() = Some(cause_chain(&e));
                }
            })
            .detach()
        };
        let mut head_state = None;
        let mut sender = if h2 {
            let io = ws_common::hyper_io::HyperIo(stream);
            let (sender, conn) = hyper::client::conn::http2::handshake(ws_common::runtime::LocalExec(ex.clone()), io)
                .await
                .map_err(|e| fail(code::CONNECT, e))?;
            drive(Box::pin(conn));
            Sender::H2(sender)
        } else {
            // A fixed read buffer: hyper's adaptive one grows to ~400 KiB per connection
            // (and under smol-hyper, which zeroed its free part before each read, cost 18 %
            // of a download's time in memset; see ws_common::hyper_io).
            let stream = request::HeadLimit::new(stream);
            head_state = Some(stream.state.clone());
            let io = ws_common::hyper_io::HyperIo(stream);
            let (sender, conn) = hyper::client::conn::http1::Builder::new()
                .read_buf_exact_size(Some(READ_BUF))
                .handshake(io)
                .await
                .map_err(|e| fail(code::CONNECT, e))?;
            drive(Box::pin(conn));
            Sender::H1(sender)
        };
        if args.verbose && h2 {
            eprintln!("* using HTTP/2");
        }
        let credentials = args.location_trusted || redirects::same_origin(&origin, &url);
        let mut req = build_request(args, &url, &method, &headers, body.as_ref(), h2, credentials)?;
        if let Some(p) = &forward {
            request::through_proxy(&mut req, &url, p);
        }
        // The engine's cookies follow their own domain and path rules, not the origin's.
        if let Some(cookie) = jar.as_ref().and_then(|j| j.header(&url)) {
            let joined = match req.headers().get(header::COOKIE).and_then(|v| v.to_str().ok()) {
                Some(given) => format!("{given}; {cookie}"),
                None => cookie,
            };
            if let Ok(v) = header::HeaderValue::from_str(&joined) {
                req.headers_mut().insert(header::COOKIE, v);
            }
        }
        let upload = request_size(&req);
        if args.verbose {
            verbose_request(&req);
        }
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                let why = conn_error.borrow_mut().take().unwrap_or_else(|| cause_chain(&e));
                return Err(fail(code::PEER_FAILED, format!("no response: {why}")));
            }
        };
        let head_at = Instant::now();
        if let Some(state) = head_state {
            state.done.set(true);
        }
        let status = resp.status();
        if let Some(j) = jar.as_mut() {
            j.take(&url, resp.headers());
        }
        if args.verbose {
            eprintln!("< {} {}", version_name(resp.version()), status);
            for (k, v) in resp.headers() {
                eprintln!("< {}: {}", k, String::from_utf8_lossy(v.as_bytes()));
            }
        }
        // A redirect without a Location is the answer itself, as in curl.
        let location = resp.headers().get(header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if args.follow
            && status.is_redirection()
            && status != StatusCode::NOT_MODIFIED
            && let Some(location) = location
        {
            if redirects >= args.max_redirects {
                return Err(fail(code::REDIRECTS, format!("maximum ({}) redirects followed", args.max_redirects)));
            }
            redirects += 1;
            let hop = redirects::follow(&url, &location, status, &method)?;
            url = hop.url;
            if hop.to_get {
                method = if method == Method::HEAD { Method::HEAD } else { Method::GET };
                body = None;
            }
            continue;
        }
        // Past --retry-max-time a retried status is simply the answer.
        let retry_in = retry.for_status(status.as_u16(), resp.headers().get(header::RETRY_AFTER));
        if let Some(wait) = retry_in
            && args.fail
        {
            return Ok(Outcome::RetryIn(wait));
        }
        if args.fail && status.as_u16() >= 400 {
            let e = fail(code::HTTP_ERROR, format!("the requested URL returned error: {}", status.as_u16()));
            if let Some(format) = &args.write_out {
                output::write_out_failure(format, &url, &e, started, status.as_u16())?;
            }
            return Err(e);
        }
        let facts = output::Facts { upload, head: method == Method::HEAD, redirects, started, phases, head_at };
        // A response that will be retried is delivered too, as curl does: to stdout it adds
        // up, a file (-o) is written again by the next attempt.
        deliver(args, &url, resp, facts).await?;
        if let Some(wait) = retry_in {
            return Ok(Outcome::RetryIn(wait));
        }
        // --fail-with-body: the body is written, and the exit is still 22.
        if args.fail_with_body && status.as_u16() >= 400 {
            return Err(fail(code::HTTP_ERROR, format!("the requested URL returned error: {}", status.as_u16())));
        }
        return Ok(Outcome::Done);
    }
}

/// How an attempt ended, when it did not fail.
#[derive(Debug)]
enum Outcome {
    /// The response was delivered.
    Done,
    /// A status curl retries: the next attempt starts after this wait.
    RetryIn(Duration),
}

/// An error with the causes it wraps ("connection error: received fatal alert: …").
fn cause_chain(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

declare_plugin!(Curl);
