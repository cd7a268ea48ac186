//! `ws bridge LISTEN TARGET`: joins a WebSocket to a TCP service, a Unix socket, a program or
//! stdio, either way round — websockify's job (`ws bridge ws-listen:0.0.0.0:8080
//! tcp:127.0.0.1:5900`), and websocat's most used modes.
//!
//! The first side may accept connections (`ws-listen:`, `tcp-listen:`, `unix-listen:`): each
//! connection it accepts gets its own TARGET, opened then (a program started by `exec:` per
//! connection), and ends on its own; the bridge serves until stopped. With any other first
//! side there is one connection: both sides are opened, bridged, and the exit status says how
//! it ended — 0 after a normal end, 1 with one line on stderr naming the side that failed.
//! (With `stdio` as the TARGET of a listening side, one connection is served: stdio is one.)
//!
//! Modules: [`spec`] (the sides as written, and opening them), [`pump`] (moving messages and
//! bytes both ways with backpressure, and how each end is passed on).

use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use ws_common::server::{Client, LimitArgs, Terms};
use ws_common::ws::{self as wsx, ClientArgs, WsStream};
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

mod pump;
mod spec;

use pump::{Mode, Outcome};
use spec::{Bytes, Spec};

/// Bridge WebSocket and streams
#[derive(Debug, Parser)]
#[command(
    name = "ws bridge",
    about = "Join a WebSocket to TCP, a Unix socket, a program or stdio (either way)",
    after_help = "Sides: ws://… wss://… ws+unix://… ws-listen:HOST:PORT tcp:HOST:PORT tcp-listen:HOST:PORT \
                  unix:PATH unix-listen:PATH exec:'COMMAND ARGS' stdio\n\
                  Example (websockify): ws bridge ws-listen:0.0.0.0:8080 tcp:127.0.0.1:5900"
)]
struct Args {
    /// The side that waits for connections (or the only connection's first side)
    #[arg(value_name = "LISTEN")]
    first: String,
    /// The side opened for each connection
    #[arg(value_name = "TARGET")]
    target: String,
    /// One message per line of the stream, and a newline after each message written to it
    #[arg(long = "line-mode")]
    line_mode: bool,
    /// Messages made from the stream are text (it must be UTF-8), not binary
    #[arg(long)]
    text: bool,
    /// Print only warnings and errors
    #[arg(short = 'q')]
    quiet: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    client: ClientArgs,
}

/// An open side.
enum Side {
    Ws(Box<WsStream>),
    Bytes(Bytes),
}

struct Bridge {
    target: Spec,
    mode: Mode,
    client: ClientArgs,
    max_message: usize,
}

impl Bridge {
    /// Opens the target side for one connection.
    async fn open(&self, spec: &Spec) -> Result<Side, String> {
        match spec {
            Spec::WsClient(url) => {
                let opts = wsx::ClientOptions { max_message: self.max_message, ..self.client.options(url.clone()) };
                wsx::connect(&opts)
                    .await
                    .map(|(ws, _)| Side::Ws(Box::new(ws)))
                    .map_err(|e| format!("{}: {e}", spec.name()))
            }
            _ => Bytes::open(spec).await.map(Side::Bytes).map_err(|e| format!("{}: {e}", spec.name())),
        }
    }

    /// Bridges two open sides until both ended.
    async fn run(&self, a: Side, a_name: &str, b: Side, b_name: &str) -> Outcome {
        match (a, b) {
            (Side::Ws(ws), Side::Bytes(bytes)) => pump::messages_and_bytes(*ws, a_name, bytes, b_name, self.mode).await,
            (Side::Bytes(bytes), Side::Ws(ws)) => pump::messages_and_bytes(*ws, b_name, bytes, a_name, self.mode).await,
            (Side::Ws(a), Side::Ws(b)) => pump::messages_and_messages(*a, a_name, *b, b_name).await,
            (Side::Bytes(a), Side::Bytes(b)) => pump::bytes_and_bytes(a, a_name, b, b_name).await,
        }
    }

    /// One accepted connection, `side` (named `name`), bridged to a fresh target.
    async fn serve_one(&self, side: Side, name: &str) -> Outcome {
        let target_name = self.target.name();
        match self.open(&self.target).await {
            Ok(target) => self.run(side, name, target, &target_name).await,
            Err(e) => {
                if let Side::Ws(mut ws) = side {
                    ws_common::session::close_and_drain(&mut ws, 1011, "bridge target unreachable").await;
                }
                Outcome { code: 1011, reason: "bridge target unreachable".into(), failed: Some(e) }
            }
        }
    }
}

/// The line a connection's end is logged with.
fn log_end(id: u64, who: &str, o: &Outcome) {
    match &o.failed {
        Some(what) => error!("connection #{id} from {who}: {what}"),
        None => info!("connection #{id} from {who} ended: code {} reason {}", o.code, o.reason),
    }
}

#[derive(Debug, Default)]
struct BridgePlugin;

impl Plugin for BridgePlugin {
    const NAME: &'static CStr = c"bridge";
    const SUMMARY: &'static CStr = c"Join a WebSocket to TCP, a Unix socket, a program or stdio";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let first = Spec::parse(&args.first).map_err(Error::usage)?;
        let target = Spec::parse(&args.target).map_err(Error::usage)?;
        if target.listens() {
            return Err(Error::usage(format!(
                "{}: only the first side may listen (the target is opened per connection)",
                target.name()
            )));
        }
        if first == Spec::Stdio && target == Spec::Stdio {
            return Err(Error::usage("stdio to stdio bridges nothing"));
        }
        // stdout may carry the stream: every log line goes to stderr.
        ws_common::log::all_to_stderr();
        ws_common::log::set_verbosity(false, args.quiet);
        args.client.prepare()?;
        let bridge = Rc::new(Bridge {
            target: target.clone(),
            mode: Mode { line: args.line_mode, text: args.text },
            client: args.client.clone(),
            max_message: args.limits.max_message_size,
        });
        let tls = args.client.tls.server_config(&[])?;
        let once = target == Spec::Stdio;
        let outcome = ws_common::runtime::block_on(|ex| async move {
            let Some(listen) = first.listen_args() else {
                // One connection: both sides opened here.
                let a = bridge.open(&first).await.map_err(Error::failure)?;
                let b = bridge.open(&target).await.map_err(Error::failure)?;
                return Ok::<_, Error>(bridge.run(a, &first.name(), b, &target.name()).await);
            };
            let (done_tx, done_rx) = smol::channel::bounded::<Outcome>(1);
            if first.messages() {
                let terms = Terms {
                    tls,
                    limits: args.limits.clone(),
                    deflate: Some(ws_common::deflate::ServerPolicy::default()),
                    gate: None,
                    prepare: None,
                };
                let handle = move |client: Client| {
                    let (bridge, done_tx) = (bridge.clone(), done_tx.clone());
                    async move {
                        let who = client.peer.to_string();
                        let o =
                            bridge.serve_one(Side::Ws(Box::new(client.ws)), &format!("client #{}", client.id)).await;
                        log_end(client.id, &who, &o);
                        if once {
                            let _ = done_tx.try_send(o.clone());
                        }
                        (o.code, o.reason)
                    }
                };
                let served = ws_common::server::serve(&ex, &listen, terms, handle);
                return futures_lite::FutureExt::or(
                    async { served.await.map(|()| None).map_err(Error::from) },
                    async { Ok(done_rx.recv().await.ok()) },
                )
                .await
                .map(|o| o.unwrap_or(Outcome::ok(1000, "")));
            }
            ws_common::log::background();
            let listener = listen.listen().await?;
            let mut next_id = 0u64;
            let accept = async {
                loop {
                    let (conn, peer) = listener.accept().await;
                    let (id, bridge, done_tx) = (next_id, bridge.clone(), done_tx.clone());
                    next_id += 1;
                    info!("connection #{id} from {peer}");
                    ex.spawn(async move {
                        let o =
                            bridge.serve_one(Side::Bytes(Bytes::accepted(conn)), &format!("connection #{id}")).await;
                        log_end(id, &peer.to_string(), &o);
                        if once {
                            let _ = done_tx.try_send(o);
                        }
                    })
                    .detach();
                }
            };
            Ok(futures_lite::FutureExt::or(accept, async { done_rx.recv().await.unwrap_or(Outcome::ok(1000, "")) })
                .await)
        })?;
        match outcome.failed {
            Some(what) => Err(Error::failure(what)),
            None => Ok(()),
        }
    }
}

declare_plugin!(BridgePlugin);
