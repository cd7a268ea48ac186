//! `ws echo_server`: answers every text or binary message with the same payload and type.

use std::ffi::{CStr, OsString};

use async_tungstenite::tungstenite::Message;
use clap::Parser;
use futures_util::StreamExt;
use ws_common::net::{ListenArgs, accept_tls};
use ws_common::tls::TlsArgs;
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Echo server
#[derive(Debug, Parser)]
#[command(name = "ws echo_server", about = "Echo server: sends every message back to its sender")]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Print only warnings and errors
    #[arg(short = 'q')]
    quiet: bool,
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
        ws_common::runtime::block_on(|ex| async move {
            let listener = args.listen.listen().await?;
            let mut next_id: u64 = 0;
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        error!("accept failed: {e}");
                        continue;
                    }
                };
                let id = next_id;
                next_id += 1;
                let tls = tls.clone();
                ex.spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let stream = match accept_tls(tcp, tls.as_ref()).await {
                        Ok(s) => s,
                        Err(e) => return error!("TLS handshake with {peer} failed: {e}"),
                    };
                    let mut ws = match async_tungstenite::accept_async(stream).await {
                        Ok(ws) => ws,
                        Err(e) => return error!("WebSocket handshake with {peer} failed: {e}"),
                    };
                    info!("New connection");
                    info!("remote ip: {}", peer.ip());
                    info!("id: {id}");
                    while let Some(msg) = ws.next().await {
                        match msg {
                            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                                if ws.send(m).await.is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    info!("Closed connection: client id {id}");
                })
                .detach();
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
    }
}

declare_plugin!(EchoServer);
