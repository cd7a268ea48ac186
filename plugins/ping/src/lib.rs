//! `ws ping URL`: each line typed is sent as a ping frame with that payload; pongs (and
//! everything else that arrives) are printed, as IXWebSocket's `ws ping` does. `/close` is
//! sent as a *text* message `/close`, also as the reference does.

use std::ffi::{CStr, OsString};
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::client::Response;
use clap::Parser;
use ws_common::session::{Handler, SessionOptions};
use ws_common::tls::TlsArgs;
use ws_common::url::Url;
use ws_common::ws::{ClientOptions, Message};
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// The largest payload a control frame may carry (RFC 6455 §5.5).
const MAX_PING: usize = 125;

/// Ping pong
#[derive(Debug, Parser)]
#[command(name = "ws ping", about = "Send each typed line as a ping frame and print the pongs")]
struct Args {
    /// Connection url (ws:// or wss://)
    url: String,
    /// Disable automatic reconnection
    #[arg(short = 'd')]
    disable_reconnect: bool,
    /// Connection and handshake timeout, in seconds
    #[arg(long = "connect-timeout", default_value_t = 60, value_name = "S")]
    connect_timeout: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

struct PingHandler;

impl Handler for PingHandler {
    fn on_open(&mut self, url: &Url, response: &Response) {
        info!("Received 0 bytes");
        info!("ping_pong: connected");
        info!("Uri: {}", ws_common::url::request_path(url));
        info!("Headers:");
        ws_common::ws::log_headers(response);
    }

    fn on_line(&mut self, line: &str) -> Option<Message> {
        if line == "/close" {
            return Some(Message::Text("/close".into()));
        }
        if line.len() > MAX_PING {
            error!(
                "Failed to send ping message. Message too long ({} > {MAX_PING} bytes) or endpoint is disconnected",
                line.len()
            );
            return None;
        }
        Some(Message::Ping(line.as_bytes().to_vec().into()))
    }

    fn on_message(&mut self, msg: &Message) -> Option<Message> {
        info!("Received {} bytes", msg.len());
        match msg {
            Message::Text(t) => info!("ping_pong: received message: {t}"),
            Message::Binary(b) => info!("ping_pong: received message: {}", String::from_utf8_lossy(b)),
            Message::Ping(p) => info!("ping_pong: received ping message: {}", String::from_utf8_lossy(p)),
            Message::Pong(p) => info!("ping_pong: received pong message: {}", String::from_utf8_lossy(p)),
            Message::Close(_) | Message::Frame(_) => {}
        }
        None
    }

    fn on_close(&mut self, code: u16, reason: &str) {
        ws_common::log::notice(format_args!("ping_pong: disconnected: code {code} reason {reason}"));
    }
}

#[derive(Debug, Default)]
struct Ping;

impl Plugin for Ping {
    const NAME: &'static CStr = c"ping";
    const SUMMARY: &'static CStr = c"Ping pong";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        args.tls.client_config(&[])?;
        let client = ClientOptions::new(url, args.tls.clone(), Duration::from_secs(args.connect_timeout.max(1)));
        let opts = SessionOptions { reconnect: !args.disable_reconnect, ..SessionOptions::new(client, "ping_pong") };
        let input = ws_common::prompt::spawn("> ", "ping");
        let mut handler = PingHandler;
        ws_common::runtime::block_on(|_| ws_common::session::run(opts, input, &mut handler))
    }
}

declare_plugin!(Ping);
