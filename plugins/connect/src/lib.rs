//! `ws connect URL`: an interactive WebSocket client.
//!
//! Each line typed (or piped in) is sent as a text message (`-b`: binary); every message
//! received is printed. Output lines follow IXWebSocket's `ws connect` so scripts written for
//! it keep working. `--echo` turns it into an echo client for conformance drivers.

use std::ffi::{CStr, OsString};
use std::io::Read;
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::client::Response;
use clap::Parser;
use ws_common::session::{Handler, SessionOptions};
use ws_common::url::Url;
use ws_common::ws::{ClientArgs, ClientOptions, DEFAULT_MAX_MESSAGE, Message};
use ws_common::{error, info, log::plain};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Connect to a remote server
#[derive(Debug, Parser)]
#[command(name = "ws connect", about = "Connect to a WebSocket server and talk to it interactively")]
struct Args {
    /// Connection url (ws:// or wss://)
    url: String,
    /// Extra handshake header 'Name: value' (repeatable)
    #[arg(short = 'H', value_name = "HEADER")]
    headers: Vec<String>,
    /// Disable automatic reconnection
    #[arg(short = 'd')]
    disable_reconnect: bool,
    /// Send each line as a binary message instead of text
    #[arg(short = 'b')]
    binary: bool,
    /// Disable per-message deflate (accepted for compatibility; deflate is not offered)
    #[arg(short = 'x')]
    no_deflate: bool,
    /// Maximum wait between reconnection attempts, in ms
    #[arg(long = "max_wait", default_value_t = 10_000, value_name = "MS")]
    max_wait: u64,
    /// Heartbeat ping interval in seconds; 0 or less disables it
    #[arg(long = "ping_interval", default_value_t = 30, allow_negative_numbers = true, value_name = "S")]
    ping_interval: i64,
    /// Ask for this subprotocol (Sec-WebSocket-Protocol)
    #[arg(long)]
    subprotocol: Option<String>,
    /// Gunzip each received message before printing it
    #[arg(short = 'g')]
    gunzip: bool,
    /// Echo every received message back and exit when the connection closes (for test drivers)
    #[arg(long)]
    echo: bool,
    /// Largest message accepted, in bytes (larger ones close the connection with 1009)
    #[arg(long = "max-message-size", default_value_t = DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    max_message_size: usize,
    #[command(flatten)]
    client: ClientArgs,
}

struct ConnectHandler {
    /// stdout is a terminal.
    terminal: bool,
    binary: bool,
    gunzip: bool,
    echo: bool,
}

impl Handler for ConnectHandler {
    fn on_open(&mut self, url: &Url, response: &Response) {
        info!("ws_connect: connected");
        info!("Uri: {}", request_uri(url));
        info!("Handshake Headers:");
        ws_common::ws::log_headers(response);
    }

    fn on_line(&mut self, line: &str) -> Option<Message> {
        if self.echo {
            return None;
        }
        Some(if self.binary { Message::Binary(line.as_bytes().to_vec().into()) } else { Message::Text(line.into()) })
    }

    fn on_message(&mut self, msg: &Message) -> Option<Message> {
        match msg {
            Message::Text(t) => {
                info!("Received {} bytes", t.len());
                if self.echo {
                    return Some(msg.clone());
                }
                self.print_payload(t.as_bytes());
            }
            Message::Binary(b) => {
                info!("Received {} bytes", b.len());
                if self.echo {
                    return Some(msg.clone());
                }
                self.print_payload(b);
            }
            Message::Ping(_) => info!("Received ping"),
            Message::Pong(p) => info!("Received pong {}", String::from_utf8_lossy(p)),
            Message::Close(_) | Message::Frame(_) => {}
        }
        None
    }

    fn on_close(&mut self, code: u16, reason: &str) {
        plain(format_args!("ws_connect: connection closed: code {code} reason {reason}"));
    }

    fn exit_on_close(&self) -> bool {
        self.echo
    }
}

impl ConnectHandler {
    fn print_payload(&self, payload: &[u8]) {
        let mut out = Vec::new();
        let payload = if self.gunzip {
            match flate2::read::GzDecoder::new(payload).read_to_end(&mut out) {
                Ok(_) => &out[..],
                Err(e) => return error!("Error decompressing: {e}"),
            }
        } else {
            payload
        };
        let text = String::from_utf8_lossy(payload);
        // At a terminal, a peer's CR, ESC or OSC must not drive it; in a pipe, bytes stay.
        let text = if self.terminal { ws_common::log::escape_controls(&text, true) } else { text };
        plain(format_args!("ws_connect: received message: {text}"));
    }
}

/// The path and query asked for, as the reference prints it after `Uri:`.
fn request_uri(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[derive(Debug, Default)]
struct Connect;

impl Plugin for Connect {
    const NAME: &'static CStr = c"connect";
    const SUMMARY: &'static CStr = c"Connect to a remote server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        let headers = ws_common::headers::parse_headers(&args.headers)?;
        for (k, v) in &headers {
            info!("{k}: {v}");
        }
        args.client.prepare()?;
        let client = ClientOptions {
            headers,
            subprotocol: args.subprotocol.clone(),
            max_message: args.max_message_size,
            ..args.client.options(url.clone())
        };
        let opts = SessionOptions {
            reconnect: !args.disable_reconnect && !args.echo,
            max_wait: Duration::from_millis(args.max_wait),
            ping_interval: (args.ping_interval > 0 && !args.echo)
                .then(|| Duration::from_secs(args.ping_interval as u64)),
            ..SessionOptions::new(client, "ws_connect")
        };
        plain(format_args!("Type Ctrl-D to exit prompt..."));
        plain(format_args!("Connecting to url: {}", args.url));
        // An echo driver answers the server only; its stdin (often /dev/null) is not input.
        let (_keep_open, input) = if args.echo {
            let (tx, rx) = smol::channel::unbounded();
            (Some(tx), rx)
        } else {
            (None, ws_common::prompt::spawn("> ", "connect"))
        };
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let mut handler = ConnectHandler { terminal, binary: args.binary, gunzip: args.gunzip, echo: args.echo };
        let _ = args.no_deflate;
        ws_common::runtime::block_on(|_| ws_common::session::run(opts, input, &mut handler))
    }
}

declare_plugin!(Connect);
