//! `ws echo_server`: answers every text or binary message with the same payload and type.
//!
//! Compatible with IXWebSocket's echo server in flags and log lines; unlike it, every
//! connection is bounded: a handshake must finish within `--handshake-timeout`, messages
//! over `--max-message-size` close the connection with 1009, bad UTF-8 with 1007, protocol
//! violations with 1002, and at most `--max-connections` clients are served at once (the
//! next gets HTTP 503). One bad client never disturbs the others: each runs in its own task.

use std::cell::Cell;
use std::ffi::{CStr, OsString};
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};
use subtle::ConstantTimeEq;
use ws_common::net::{ListenArgs, accept_tls};
use ws_common::tls::TlsArgs;
use ws_common::ws::{self as wsx, DEFAULT_MAX_MESSAGE, Message, Refusal, close_parts};
use ws_common::{error, info, warning};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Echo server
#[derive(Debug, Parser)]
#[command(name = "ws echo_server", about = "Echo server: sends every message back to its sender")]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Print only warnings and errors (no per-connection or per-message lines)
    #[arg(short = 'q')]
    quiet: bool,
    /// Send a 'Welcome !' greeting to each new client
    #[arg(short = 'g')]
    greetings: bool,
    /// Do not answer pings (not supported yet: pings are always answered)
    #[arg(short = 'p')]
    disable_pong: bool,
    /// Disable per-message deflate (accepted for compatibility; deflate is not negotiated)
    #[arg(short = 'x')]
    disable_deflate: bool,
    /// Require this exact Authorization header value; others are closed with 4001
    #[arg(long = "http_authorization_header", value_name = "VALUE")]
    http_authorization_header: Option<String>,
    /// Largest message accepted, in bytes; larger ones close the connection with 1009
    #[arg(long = "max-message-size", default_value_t = DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    max_message_size: usize,
    /// Seconds a client has to finish the TLS and WebSocket handshakes
    #[arg(long = "handshake-timeout", default_value_t = 5, value_name = "S")]
    handshake_timeout: u64,
    /// Most clients served at once; more get HTTP 503
    #[arg(long = "max-connections", default_value_t = 16_384, value_name = "N")]
    max_connections: usize,
}

#[derive(Debug, Default)]
struct EchoServer;

impl Plugin for EchoServer {
    const NAME: &'static CStr = c"echo_server";
    const SUMMARY: &'static CStr = c"Echo server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        ws_common::log::set_verbosity(false, args.quiet);
        let tls = args.tls.server_config(&[])?;
        let want = args.max_connections as u64 + 64;
        let limit = wsx::raise_fd_limit(want);
        ws_common::runtime::block_on(|ex| async move {
            let listener = args.listen.listen().await?;
            if limit < want {
                warning!(
                    "open-file limit is {limit}: at most about {} clients can connect (raise it with `ulimit -n {want}`)",
                    limit.saturating_sub(64)
                );
            }
            if args.disable_deflate {
                info!("Disable per message deflate");
            }
            if args.disable_pong {
                warning!("-p is not supported yet: pings are always answered with pongs");
            }
            let conf = Rc::new(Conf {
                auth: args.http_authorization_header.clone(),
                greetings: args.greetings,
                max_message: args.max_message_size,
                handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
                max_connections: args.max_connections,
                active: Cell::new(0),
            });
            let mut next_id: u64 = 0;
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: say so, back off a little instead of spinning.
                        error!("accept failed: {e}");
                        smol::Timer::after(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let id = next_id;
                next_id += 1;
                let tls = tls.clone();
                let conf = conf.clone();
                ex.spawn(async move {
                    conf.active.set(conf.active.get() + 1);
                    serve(&conf, tcp, peer, id, tls).await;
                    conf.active.set(conf.active.get() - 1);
                })
                .detach();
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
    }
}

struct Conf {
    auth: Option<String>,
    greetings: bool,
    max_message: usize,
    handshake_timeout: Duration,
    max_connections: usize,
    active: Cell<usize>,
}

async fn serve(
    conf: &Conf,
    tcp: smol::net::TcpStream,
    peer: std::net::SocketAddr,
    id: u64,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let _ = tcp.set_nodelay(true);
    let over_limit = conf.active.get() > conf.max_connections;
    let handshake = async {
        let stream = accept_tls(tcp, tls.as_ref()).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
        wsx::accept(stream, conf.max_message, move |_| {
            if over_limit { Err(Refusal { status: 503, reason: "Too many connections".into() }) } else { Ok(()) }
        })
        .await
        .map_err(|e| format!("WebSocket handshake failed: {e}"))
    }
    .or(async {
        smol::Timer::after(conf.handshake_timeout).await;
        Err(format!("no handshake within {:?}", conf.handshake_timeout))
    });
    let (mut ws, hs) = match handshake.await {
        Ok(ok) => ok,
        Err(e) => {
            if over_limit {
                warning!("refused client {peer}: more than {} connections", conf.max_connections);
            } else {
                error!("client {peer}: {e}");
            }
            return;
        }
    };
    info!("New connection");
    info!("remote ip: {}", peer.ip());
    info!("id: {id}");
    info!("Uri: {}", hs.uri);
    info!("Headers:");
    for (k, v) in &hs.headers {
        info!("{k}: {v}");
    }
    let (code, reason) = echo(conf, &mut ws, &hs).await;
    info!("Closed connection: client id {id} code {code} reason {reason}");
}

/// Runs one connection; returns the close code and reason it ended with.
async fn echo(conf: &Conf, ws: &mut wsx::WsStream, hs: &wsx::Handshake) -> (u16, String) {
    if let Some(expected) = &conf.auth {
        let given = hs.header("Authorization").unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
        if !ok {
            ws_common::session::close_and_drain(ws, 4001, "Permission denied").await;
            return (4001, "Permission denied".into());
        }
        if ws.send(Message::Text("Authorization suceeded!".into())).await.is_err() {
            return (1006, "Abnormal closure".into());
        }
    }
    if conf.greetings && ws.send(Message::Text("Welcome !".into())).await.is_err() {
        return (1006, "Abnormal closure".into());
    }
    let mut closed: Option<(u16, String)> = None;
    loop {
        // Echo everything already received before flushing, so pipelined clients get
        // their replies in few writes; flush as soon as nothing more is ready.
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
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                info!("Received {} bytes", m.len());
                if ws.feed(m).await.is_err() {
                    break;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                closed = Some(close_parts(frame.as_ref()));
                let _ = ws.flush().await;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if let Some(code) = wsx::fail(ws, &e).await {
                    return (code, e.to_string());
                }
                break;
            }
        }
    }
    closed.unwrap_or((1006, "Abnormal closure".into()))
}

declare_plugin!(EchoServer);
