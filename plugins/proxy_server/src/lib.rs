//! `ws proxy_server`: a WebSocket reverse proxy.
//!
//! The client's `Host` header picks the upstream from the config file (matched with its
//! port, then without), else `--remote_host`; an unknown host with no fallback gets HTTP 404
//! before the upgrade. The upstream is opened *before* the client is answered, with the
//! client's path and query appended and its subprotocols and permessage-deflate offers
//! forwarded; the client's 101 carries the upstream's choice, so that compressed frames pass
//! through as bytes like any other. Then frames flow both ways with their type and
//! fragmentation, and close codes and reasons are passed on in both directions. Pings are
//! answered per hop.
//!
//! After the handshakes, frames pass through as bytes (`splice`), checked but not decoded;
//! plain pairs are relayed by one edge-triggered relay thread (`relay`), as nginx does, and
//! come back to the async side to be closed; TLS pairs are relayed on the async side.
//!
//! Fixes over the reference: both config forms the guide implies work (`host=url` lines and
//! JSON `{"remote_urls": {...}}`; the reference's parser split at the last `:` and broke
//! both), and an unreachable, refusing or slow upstream gets the client a prompt close 1011
//! with the reason instead of hanging it forever.

mod relay;
mod splice;

use std::collections::HashMap;
use std::ffi::{CStr, OsString};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use std::pin::pin;
use std::task::Poll;

use clap::Parser;
use futures_lite::FutureExt;
use smol::lock::Mutex;
use splice::{Ended, Out, OutState, Pump};
use ws_common::runtime::Isolated;
use ws_common::server::{Client, Gate, Prepare, Prepared, ServerArgs};
use ws_common::tls::TlsArgs;
use ws_common::url::Url;
use ws_common::ws::{Answer, ClientOptions, Handshake, Refusal};
use ws_common::{debug, error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Websocket proxy
#[derive(Debug, Parser)]
#[command(
    name = "ws proxy_server",
    about = "WebSocket reverse proxy: routes each client to an upstream by its Host header"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    workers: ws_common::workers::WorkerArgs,
    /// Upstream for clients whose Host is not in the config (ws://, wss://, or a Unix socket:
    /// ws+unix:///PATH:/base)
    #[arg(long = "remote_host", value_name = "URL")]
    remote_host: Option<String>,
    /// Host map: lines `host[:port]=ws://url` (# comments), or JSON {"remote_urls": {...}}
    #[arg(long = "config_path", value_name = "FILE")]
    config_path: Option<PathBuf>,
    /// Seconds to open an upstream before the client is closed with 1011
    #[arg(long = "upstream-timeout", default_value_t = 10, value_name = "S")]
    upstream_timeout: u64,
    /// PEM CA bundle to verify wss:// upstreams with (default: the system's)
    #[arg(long = "upstream-ca-file", value_name = "FILE")]
    upstream_ca_file: Option<PathBuf>,
    /// Log the mapping chosen for each client
    #[arg(short = 'v')]
    verbose: bool,
}

/// Host (with or without port) → upstream URL.
type HostMap = HashMap<String, Url>;

fn config_error(path: &Path, line: usize, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("{}:{line}: {why}", path.display()))
}

/// Reads either config form. Errors name the file and the line.
fn load_config(path: &Path) -> Result<HostMap, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read config file {}: {e}", path.display())))?;
    let mut map = HostMap::new();
    if text.trim_start().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| config_error(path, e.line(), e))?;
        let urls = json
            .get("remote_urls")
            .and_then(|v| v.as_object())
            .ok_or_else(|| config_error(path, 1, "expected an object {\"remote_urls\": {\"host\": \"ws://url\"}}"))?;
        for (host, url) in urls {
            let line = text.lines().position(|l| l.contains(&format!("\"{host}\""))).map_or(1, |i| i + 1);
            let url =
                url.as_str().ok_or_else(|| config_error(path, line, format!("the URL for {host} is not a string")))?;
            let url = ws_common::url::parse_ws_url(url).map_err(|e| config_error(path, line, e))?;
            map.insert(host.to_ascii_lowercase(), url);
        }
        return Ok(map);
    }
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (host, url) = line
            .split_once('=')
            .ok_or_else(|| config_error(path, i + 1, format!("expected host=ws://url, got {line:?}")))?;
        let (host, url) = (host.trim(), url.trim());
        if host.is_empty() {
            return Err(config_error(path, i + 1, "empty host name"));
        }
        let url = ws_common::url::parse_ws_url(url).map_err(|e| config_error(path, i + 1, e))?;
        map.insert(host.to_ascii_lowercase(), url);
    }
    Ok(map)
}

/// `host:port` → `host` (`[::1]:80` → `[::1]`); a Host without a port is returned as is.
fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.find(']').map_or(h, |i| &h[..=i]);
    }
    match h.rsplit_once(':') {
        Some((bare, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => bare,
        _ => h,
    }
}

/// The upstream for a client's Host header: exact match, then without the port, then the
/// fallback.
fn pick<'a>(map: &'a HostMap, fallback: Option<&'a Url>, host: Option<&str>) -> Option<&'a Url> {
    let host = host.map(str::to_ascii_lowercase);
    host.as_deref().and_then(|h| map.get(h).or_else(|| map.get(strip_port(h)))).or(fallback)
}

/// The upstream URL with the client's path and query appended (for a `ws+unix:` upstream,
/// to the request path after the socket's).
fn upstream_url(base: &Url, client_uri: &str) -> Url {
    let mut url = base.clone();
    let (path, query) = client_uri.split_once('?').map_or((client_uri, None), |(p, q)| (p, Some(q)));
    let mut base_path = base.path().to_string();
    if ws_common::url::unix_socket(base).is_some() && !base_path.contains(':') {
        base_path.push(':');
    }
    let joined = format!("{}/{}", base_path.trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(query);
    url
}

/// End-to-end request headers passed upstream: credentials, cookies, origin, user agent and
/// `X-*`. Hop-by-hop and handshake headers (Host, Connection, Upgrade, Sec-WebSocket-*) are
/// the upstream hop's own.
fn forwarded_headers(hs: &ws_common::ws::Handshake) -> Vec<(String, String)> {
    const PASS: [&str; 4] = ["authorization", "cookie", "origin", "user-agent"];
    hs.headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            PASS.contains(&k.as_str()) || k.starts_with("x-")
        })
        .cloned()
        .collect()
}

#[derive(Debug, Default)]
struct ProxyServer;

impl Plugin for ProxyServer {
    const NAME: &'static CStr = c"proxy_server";
    const SUMMARY: &'static CStr = c"Websocket proxy";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        ws_common::log::set_verbosity(args.verbose, args.server.quiet);
        let map = match &args.config_path {
            Some(p) => load_config(p)?,
            None => HostMap::new(),
        };
        let fallback = args.remote_host.as_deref().map(ws_common::url::parse_ws_url).transpose()?;
        if map.is_empty() && fallback.is_none() {
            return Err(Error::usage("nothing to proxy to: give --remote_host or --config_path"));
        }
        for (host, url) in &map {
            debug!("proxy map: {host} -> {url}");
        }
        let upstream_tls = TlsArgs {
            ca_file: args.upstream_ca_file.clone(),
            verify_none: args.server.tls.verify_none,
            ..TlsArgs::default()
        };
        upstream_tls.client_config(&[])?;
        let routes: Routes = (map, fallback);
        let timeout = Duration::from_secs(args.upstream_timeout.max(1));
        let max_message = args.server.limits.max_message_size;
        // Each worker its own routes, gate and upstream opener (they live on its loop); the
        // relay thread that plain pairs are handed to is the process's.
        let (routes, upstream_tls) = (&routes, &upstream_tls);
        args.server.run_workers_with(args.verbose, args.workers.count(), |_, _| {
            let routes = Rc::new(routes.clone());
            let upstream_tls = upstream_tls.clone();
            let gate_routes = routes.clone();
            let gate: Gate = Rc::new(move |hs| match pick(&gate_routes.0, gate_routes.1.as_ref(), hs.header("Host")) {
                Some(_) => Ok(()),
                None => Err(Refusal {
                    status: 404,
                    reason: format!("no upstream for host {:?}", hs.header("Host").unwrap_or("")),
                }),
            });
            let prepare = Prepare {
                run: Rc::new(move |hs: Handshake| {
                    let (routes, tls) = (routes.clone(), upstream_tls.clone());
                    Box::pin(async move { open_upstream(&routes, tls, timeout, max_message, &hs).await })
                }),
                time: timeout,
            };
            let handle = move |client| proxy(client, max_message);
            async move {
                Ok(ws_common::server::Worker {
                    gate: Some(gate),
                    prepare: Some(prepare),
                    handle,
                    background: std::future::pending::<()>(),
                })
            }
        })
    }
}

/// Routes: the host map and the fallback.
type Routes = (HostMap, Option<Url>);

/// A client's upstream hop, opened before the client is answered.
struct Upstream {
    stream: Stream,
    url: Url,
    /// The upstream agreed permessage-deflate (and the client was answered the same).
    deflate: bool,
}

/// Opens the client's upstream before the client gets its 101, offering it what the client
/// offered (its subprotocols, its permessage-deflate offers) so that the client is answered
/// with the upstream's choice: compressed frames then pass through as bytes like any other.
/// On failure the client is still upgraded (then closed with 1011 and the reason).
async fn open_upstream(
    routes: &Routes,
    tls: TlsArgs,
    timeout: Duration,
    max_message: usize,
    hs: &Handshake,
) -> Prepared {
    let fail = |reason: String| Prepared { answer: Answer::Own, carry: Box::new(Err::<Upstream, String>(reason)) };
    let Some(base) = pick(&routes.0, routes.1.as_ref(), hs.header("Host")) else {
        return fail("no upstream".into());
    };
    use ws_common::headers::values;
    let mut headers = forwarded_headers(hs);
    if let Some(o) = ws_common::deflate::deflate_offers(&values(&hs.headers, "Sec-WebSocket-Extensions")) {
        headers.push(("Sec-WebSocket-Extensions".into(), o));
    }
    let protocols = values(&hs.headers, "Sec-WebSocket-Protocol");
    let opts = ClientOptions {
        url: upstream_url(base, &hs.uri),
        headers,
        subprotocol: (!protocols.is_empty()).then(|| protocols.join(", ")),
        tls,
        timeout,
        max_message,
        // The client's own offers go upstream as they are (above), not ours.
        deflate: false,
        // A ws+unix upstream is reached over its socket; proxies are for clients.
        via: ws_common::dial::Via::for_url(&base.clone(), Some(""), None).unwrap_or_default(),
    };
    let (stream, answer) = match ws_common::ws::connect_raw(&opts).await {
        Ok(ok) => ok,
        Err(e) => return fail(format!("upstream {} unavailable: {e}", opts.url)),
    };
    let extensions = values(&answer, "Sec-WebSocket-Extensions");
    let deflate = match ws_common::deflate::accept_answer(&extensions) {
        Ok(agreed) => agreed.is_some(),
        Err(e) => return fail(format!("upstream {}: {e}", opts.url)),
    };
    let mut lines = Vec::new();
    if let Some(p) = values(&answer, "Sec-WebSocket-Protocol").into_iter().next() {
        lines.push(("Sec-WebSocket-Protocol".to_string(), p.to_string()));
    }
    if deflate {
        lines.push(("Sec-WebSocket-Extensions".to_string(), extensions.join(", ")));
    }
    Prepared {
        answer: Answer::Relayed(lines),
        carry: Box::new(Ok::<Upstream, String>(Upstream { stream, url: opts.url, deflate })),
    }
}

/// Relays one client to its upstream until either side closes; returns the client's close.
async fn proxy(client: Client, max_message: usize) -> (u16, String) {
    let Client { ws: mut downstream, handshake, id, carry, .. } = client;
    let upstream = match carry.and_then(|c| c.downcast::<Result<Upstream, String>>().ok()).map(|b| *b) {
        Some(Ok(u)) => u,
        failed => {
            let reason = failed.and_then(Result::err).unwrap_or_else(|| "no upstream".into());
            error!("client id {id}: {reason}");
            ws_common::session::close_and_drain(&mut downstream, 1011, &reason).await;
            return (1011, reason);
        }
    };
    info!("client id {id}: {} {} -> {}", handshake.header("Host").unwrap_or("-"), handshake.uri, upstream.url);
    let (upstream, deflate) = (upstream.stream, upstream.deflate);
    let (c2u, u2c) = (Pump::new(true, max_message, deflate), Pump::new(false, max_message, deflate));
    let lost = |e: std::io::Error| (1011, format!("connection lost between relays: {e}"));
    // Plain pairs go to the relay thread (see `relay`), TLS ones stay here.
    // The client was answered what the upstream agreed, with no deflate layer of our own:
    // its socket carries the frames as they are, compressed or not.
    let Some(downstream) = downstream.into_inner().into_plain() else {
        return (1011, "a deflate layer on a relayed socket".into());
    };
    let (client, upstream, c2u, u2c, resumed) = match plain_pair(downstream, upstream) {
        Handoff::Plain(client, upstream) => {
            let pair = relay::Pair { client, upstream, c2u, u2c };
            let (client, upstream, c2u, u2c, resumed) = match relay::hand_over(pair) {
                Ok(back) => {
                    let Ok(b) = back.recv().await else { return (1011, "relay thread gone".into()) };
                    let resumed = Resumed { to_client: b.to_client, to_upstream: b.to_upstream, first: b.first };
                    (b.client, b.upstream, b.c2u, b.u2c, Some(resumed))
                }
                Err(p) => {
                    let p = *p;
                    (p.client, p.upstream, p.c2u, p.u2c, None)
                }
            };
            match (ws_common::net::TcpStream::from_std(client), ws_common::net::TcpStream::from_std(upstream)) {
                (Ok(c), Ok(u)) => (Stream::Plain(c.into()), Stream::Plain(u.into()), c2u, u2c, resumed),
                (Err(e), _) | (_, Err(e)) => return lost(e),
            }
        }
        Handoff::Streams(client, upstream) => (client, upstream, c2u, u2c, None),
        Handoff::Lost(e) => return lost(e),
    };
    relay_and_finish(id, (client, c2u), (upstream, u2c), resumed).await
}

type Stream = ws_common::net::Stream;
use ws_common::net::Transport;

/// A pair coming back from the relay thread: what it had not written, and how it ended.
struct Resumed {
    to_client: OutState,
    to_upstream: OutState,
    first: (bool, Ended),
}

// One per connection, moved once: not worth a box.
#[allow(clippy::large_enum_variant)]
enum Handoff {
    /// Both plain, out of the async reactor, for the relay thread.
    Plain(std::net::TcpStream, std::net::TcpStream),
    /// As they were (TLS on a side, or a socket with another handle on it).
    Streams(Stream, Stream),
    Lost(std::io::Error),
}

fn plain_pair(client: Stream, upstream: Stream) -> Handoff {
    // The only handle on its socket, so it may leave the loop.
    let sole = |t: &ws_common::net::TcpStream| !t.is_shared();
    let to_std = |t: ws_common::net::TcpStream| t.into_std().map_err(|_| std::io::Error::other("socket shared"));
    match (client, upstream) {
        (Stream::Plain(Transport::Tcp(c)), Stream::Plain(Transport::Tcp(u))) if sole(&c) && sole(&u) => {
            match (to_std(c), to_std(u)) {
                (Ok(c), Ok(u)) => Handoff::Plain(c, u),
                (Err(e), _) | (_, Err(e)) => Handoff::Lost(e),
            }
        }
        (c, u) => Handoff::Streams(c, u),
    }
}

/// Relays until a direction ends (unless the relay thread already saw one end: `resumed`),
/// then closes both sides as the way it ended asks; returns the client's close.
async fn relay_and_finish(
    id: u64,
    (client, mut c2u): (Stream, Pump),
    (upstream, mut u2c): (Stream, Pump),
    resumed: Option<Resumed>,
) -> (u16, String) {
    let (mut client_rx, client_half) = splice::halves(client);
    let (mut up_rx, up_half) = splice::halves(upstream);
    let (client_tx, up_tx, first) = match resumed {
        None => (Out::new(client_half), Out::new(up_half), None),
        Some(r) => {
            (Out::resume(client_half, r.to_client).await, Out::resume(up_half, r.to_upstream).await, Some(r.first))
        }
    };
    let (client_tx, up_tx) = (Mutex::new(client_tx), Mutex::new(up_tx));
    // Each direction is polled only when its own socket woke it: polled together, every
    // wake-up of one made the other try a read into EAGAIN (one wasted syscall per batch).
    let mut c2u = pin!(Isolated::new(c2u.run(&mut client_rx, &up_tx, &client_tx)));
    let mut u2c = pin!(Isolated::new(u2c.run(&mut up_rx, &client_tx, &up_tx)));
    let first = match first {
        Some(first) => first,
        None => {
            std::future::poll_fn(|cx| {
                if let Poll::Ready(e) = c2u.as_mut().poll(cx) {
                    return Poll::Ready((true, e));
                }
                u2c.as_mut().poll(cx).map(|e| (false, e))
            })
            .await
        }
    };
    let second = Duration::from_secs(1);
    let bounded = |d| async move {
        ws_common::runtime::Timer::after(d).await;
    };
    let say = |to_client: bool, code: u16, reason: String| {
        let (client_tx, up_tx) = (&client_tx, &up_tx);
        async move {
            let frame = splice::close_frame(to_client, code, &reason);
            let _ = splice::send_close(if to_client { client_tx } else { up_tx }, &frame)
                .or(async {
                    bounded(second).await;
                    false
                })
                .await;
        }
    };
    match first {
        // A close passed through: let the other side's answer pass back, for a while.
        (true, Ended::Closed(code, reason)) => {
            async {
                u2c.as_mut().await;
            }
            .or(bounded(second))
            .await;
            (code, reason)
        }
        (false, Ended::Closed(code, reason)) => {
            debug!("client id {id}: upstream closed with {code} {reason}");
            async {
                c2u.as_mut().await;
            }
            .or(bounded(second))
            .await;
            (code, reason)
        }
        (true, Ended::Gone) | (false, Ended::WriteGone) => {
            say(false, 1001, "client went away".into()).await;
            (1006, "Abnormal closure".into())
        }
        (true, Ended::Failed(e)) => {
            let code = e.close_code();
            say(true, code, e.to_string()).await;
            say(false, 1001, "client connection failed".into()).await;
            (code, e.to_string())
        }
        (false, Ended::Gone) | (true, Ended::WriteGone) => {
            let reason = "upstream connection lost".to_string();
            say(true, 1011, reason.clone()).await;
            (1011, reason)
        }
        (false, Ended::Failed(e)) => {
            let reason = format!("upstream failed: {e}");
            say(false, e.close_code(), e.to_string()).await;
            say(true, 1011, reason.clone()).await;
            (1011, reason)
        }
    }
}

declare_plugin!(ProxyServer);

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn both_config_forms_parse() {
        let lines =
            write("# comment\n\necho.localhost=ws://127.0.0.1:8009\nbavarde.localhost:8008 = ws://localhost:5678/x\n");
        let m = load_config(lines.path()).unwrap();
        assert_eq!(m["echo.localhost"].as_str(), "ws://127.0.0.1:8009/");
        assert_eq!(m["bavarde.localhost:8008"].as_str(), "ws://localhost:5678/x");
        let json =
            write(r#"{"remote_urls": {"echo.localhost:8008": "ws://localhost:8009", "Cobra.localhost": "wss://h/"}}"#);
        let m = load_config(json.path()).unwrap();
        assert_eq!(m["echo.localhost:8008"].as_str(), "ws://localhost:8009/");
        assert!(m.contains_key("cobra.localhost"));
    }

    #[test]
    fn malformed_configs_name_the_file_and_line() {
        let bad = write("ok.host=ws://a\nthis line has no equals sign\n");
        let e = load_config(bad.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(&format!("{}:2:", bad.path().display())), "{e}");
        let bad_url = write("h=http://a\n");
        assert!(load_config(bad_url.path()).unwrap_err().to_string().contains(":1:"));
        let bad_json = write("{\"remote_urls\": {\"a\": 3}}");
        assert!(load_config(bad_json.path()).unwrap_err().to_string().contains("not a string"));
    }

    #[test]
    fn host_matches_with_then_without_port_then_fallback() {
        let mut m = HostMap::new();
        m.insert("a.local:8008".into(), Url::parse("ws://one/").unwrap());
        m.insert("b.local".into(), Url::parse("ws://two/").unwrap());
        let fb = Url::parse("ws://fallback/").unwrap();
        assert_eq!(pick(&m, None, Some("a.local:8008")).unwrap().as_str(), "ws://one/");
        assert_eq!(pick(&m, None, Some("B.local:9999")).unwrap().as_str(), "ws://two/");
        assert!(pick(&m, None, Some("a.local:1")).is_none());
        assert_eq!(pick(&m, Some(&fb), Some("zzz")).unwrap().as_str(), "ws://fallback/");
        assert!(pick(&m, None, None).is_none());
    }

    #[test]
    fn client_path_and_query_are_appended() {
        let base = Url::parse("ws://up:9/base/").unwrap();
        assert_eq!(upstream_url(&base, "/chat?room=1").as_str(), "ws://up:9/base/chat?room=1");
        assert_eq!(upstream_url(&Url::parse("ws://up:9").unwrap(), "/").as_str(), "ws://up:9/");
        let unix = |base: &str, uri: &str| {
            let u = upstream_url(&Url::parse(base).unwrap(), uri);
            (ws_common::url::unix_socket(&u).unwrap(), ws_common::url::request_target(&u))
        };
        let sock = std::path::PathBuf::from("/run/up.sock");
        assert_eq!(unix("ws+unix:///run/up.sock", "/chat?room=1"), (sock.clone(), "/chat?room=1".into()));
        assert_eq!(unix("ws+unix:///run/up.sock:/base/", "/chat"), (sock.clone(), "/base/chat".into()));
        assert_eq!(unix("ws+unix:///run/up.sock:", "/"), (sock, "/".into()));
    }
}
