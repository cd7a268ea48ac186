//! `ws echo_server`: answers every text or binary message with the same payload and type.
//!
//! Compatible with IXWebSocket's echo server in flags and log lines; the limits and the
//! accept loop are the shared server skeleton (`ws_common::server`), so a handshake must
//! finish in time, oversized messages close with 1009, bad UTF-8 with 1007 and protocol
//! violations with 1002.

use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use subtle::ConstantTimeEq;
use ws_common::deflate::ServerPolicy;
use ws_common::info;
use ws_common::server::{Client, ServerArgs};
use ws_common::ws::{self as wsx, Message};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Echo server
#[derive(Debug, Parser)]
#[command(name = "ws echo_server", about = "Echo server: sends every message back to its sender")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    workers: ws_common::workers::WorkerArgs,
    /// Send a 'Welcome !' greeting to each new client
    #[arg(short = 'g')]
    greetings: bool,
    /// Do not answer pings with pongs: frames are echoed as they arrive, fragmentation kept
    /// (still checked: fragment order, UTF-8 of text, close codes)
    #[arg(short = 'p')]
    disable_pong: bool,
    /// Decline permessage-deflate (accepted by default, with the parameters the client asks;
    /// with -p, compressed frames are echoed as they are, the client's window limited to the
    /// one it allows the server)
    #[arg(short = 'x')]
    disable_deflate: bool,
    /// Require this exact Authorization header value; others are closed with 4001
    #[arg(long = "http_authorization_header", value_name = "VALUE")]
    http_authorization_header: Option<String>,
}

#[derive(Debug, Default)]
struct EchoServer;

impl Plugin for EchoServer {
    const NAME: &'static CStr = c"echo_server";
    const SUMMARY: &'static CStr = c"Echo server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        // Frame mode echoes compressed frames as they are (see ServerPolicy::echo_frames).
        let policy = ServerPolicy { echo_frames: args.disable_pong, ..ServerPolicy::default() };
        args.server.deflate = (!args.disable_deflate).then_some(policy);
        ws_common::log::set_verbosity(false, args.server.quiet);
        if args.disable_deflate {
            info!("Disable per message deflate");
        }
        if args.disable_pong {
            info!("Disable responding to PING messages with PONG");
        }
        let conf = Conf {
            auth: args.http_authorization_header.clone(),
            greetings: args.greetings,
            no_pong: args.disable_pong,
            max_message: args.server.limits.max_message_size,
        };
        // Each worker its own copy: nothing shared between them while echoing.
        args.server.run_workers(false, args.workers.count(), || {
            let conf = Rc::new(conf.clone());
            let handle = move |client| {
                let conf = conf.clone();
                async move { echo(&conf, client).await }
            };
            (None, handle)
        })
    }
}

#[derive(Clone)]
struct Conf {
    auth: Option<String>,
    greetings: bool,
    no_pong: bool,
    max_message: usize,
}

/// The authorization check and the greeting; `Err` is how the connection ended.
async fn welcome(conf: &Conf, ws: &mut wsx::WsStream, hs: &wsx::Handshake) -> Result<(), (u16, String)> {
    if let Some(expected) = &conf.auth {
        let given = hs.header("Authorization").unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
        if !ok {
            ws_common::session::close_and_drain(ws, 4001, "Permission denied").await;
            return Err((4001, "Permission denied".into()));
        }
        if ws.send(Message::Text("Authorization suceeded!".into())).await.is_err() {
            return Err((1006, "Abnormal closure".into()));
        }
    }
    if conf.greetings && ws.send(Message::Text("Welcome !".into())).await.is_err() {
        return Err((1006, "Abnormal closure".into()));
    }
    Ok(())
}

/// Runs one connection; returns the close code and reason it ended with.
async fn echo(conf: &Conf, client: Client) -> (u16, String) {
    let Client { mut ws, handshake: hs, .. } = client;
    if let Err(end) = welcome(conf, &mut ws, &hs).await {
        return end;
    }
    let deflate = hs.deflate.is_some();
    // The request's headers are not needed any more: an idle connection should not keep them.
    drop(hs);
    if conf.no_pong {
        let Some(stream) = ws.into_inner().into_plain() else {
            return (1011, "frame mode without the raw socket".into());
        };
        return ws_common::server::echo_frames(stream, conf.max_message, deflate).await;
    }
    ws_common::server::echo_messages(&mut ws).await
}

declare_plugin!(EchoServer);
