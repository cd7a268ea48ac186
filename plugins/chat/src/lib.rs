//! `ws chat URL USER`: group chat through a broadcast server, wire-compatible with
//! IXWebSocket's chat: each line goes out as a binary PDU `{text, user}`
//! (`ws_common::pdu`), and received PDUs print as `<from>(<N> bytes) > <text>`. A malformed
//! message is reported and skipped.

use std::ffi::{CStr, OsString};
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::client::Response;
use clap::Parser;
use ws_common::session::{Handler, SessionOptions};
use ws_common::url::Url;
use ws_common::ws::{ClientOptions, Message};
use ws_common::{error, info, log::plain};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Group chat
#[derive(Debug, Parser)]
#[command(name = "ws chat", about = "Group chat through a broadcast server (IXWebSocket chat PDUs)")]
struct Args {
    /// Connection url (ws:// or wss://)
    url: String,
    /// Your user name
    user: String,
    /// Disable automatic reconnection
    #[arg(short = 'd')]
    disable_reconnect: bool,
    /// Maximum wait between reconnection attempts, in ms
    #[arg(long = "max_wait", default_value_t = 10_000, value_name = "MS")]
    max_wait: u64,
    #[command(flatten)]
    tls: ws_common::tls::TlsArgs,
}

struct ChatHandler {
    user: String,
}

impl Handler for ChatHandler {
    fn on_open(&mut self, url: &Url, response: &Response) {
        info!("ws chat: connected");
        info!("Uri: {}", ws_common::url::request_path(url));
        info!("Headers:");
        ws_common::ws::log_headers(response);
        info!("ws chat: user {} connected !", self.user);
    }

    fn on_line(&mut self, line: &str) -> Option<Message> {
        Some(Message::Binary(ws_common::pdu::chat(&self.user, line).into()))
    }

    fn on_message(&mut self, msg: &Message) -> Option<Message> {
        let data: &[u8] = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            _ => return None,
        };
        match ws_common::pdu::decode(data) {
            Ok(pdu) => {
                let from = ws_common::pdu::field(&pdu, "user");
                let text = ws_common::pdu::field(&pdu, "text");
                plain(format_args!("{from}({} bytes) > {text}", data.len()));
            }
            Err(e) => error!("ws chat: skipping a malformed message ({} bytes): {e}", data.len()),
        }
        None
    }

    fn on_close(&mut self, code: u16, reason: &str) {
        ws_common::log::notice(format_args!("ws chat user disconnected: {} code {code} reason {reason}", self.user));
    }
}

#[derive(Debug, Default)]
struct Chat;

impl Plugin for Chat {
    const NAME: &'static CStr = c"chat";
    const SUMMARY: &'static CStr = c"Group chat";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        args.tls.client_config(&[])?;
        let client = ClientOptions::new(url, args.tls.clone(), Duration::from_secs(60));
        let opts = SessionOptions {
            reconnect: !args.disable_reconnect,
            max_wait: Duration::from_millis(args.max_wait),
            ..SessionOptions::new(client, "ws chat")
        };
        plain(format_args!("Type Ctrl-D to exit prompt..."));
        plain(format_args!("Connecting to url: {}", args.url));
        let input = ws_common::prompt::spawn(&format!("{} > ", args.user), "chat");
        let mut handler = ChatHandler { user: args.user.clone() };
        ws_common::runtime::block_on(|_| ws_common::session::run(opts, input, &mut handler))
    }
}

declare_plugin!(Chat);
