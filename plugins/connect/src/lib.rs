//! `ws connect URL`: an interactive WebSocket client, and a pipe for scripts.
//!
//! Each line typed (or piped in) is sent as a text message (`-b`: binary); every message
//! received is printed. `--echo` turns it into an echo client for conformance drivers.
//!
//! - **At a terminal** the output is IXWebSocket's (`ws_connect: received message: …`, log
//!   lines), printed above the prompt; a peer's control characters are shown escaped.
//! - **In a pipe** (stdout not a terminal) stdout carries only the received messages, one per
//!   line, as received (binary: `--binary-output raw|base64|hex`), or one JSON object each with
//!   `--jsonl` (`{"type":"text","data":…}`, binary as base64: lossless); every log line, the
//!   close notice and errors go to stderr. `printf '{"a":1}\n' | ws connect URL | jq .a`.
//! - **Lifetime**: at the end of input, once nothing has arrived for half a second, the
//!   client closes with 1000 and keeps printing until the server's close (`--close-timeout`),
//!   so replies in flight are kept; `--no-close` waits for the server to close instead; `--max-messages N` (`-1`) and `--idle-timeout S` end it early;
//!   `--send TEXT` is sent on every (re)connection first. Exit 0 after a normal close or a
//!   limit, 1 after an abnormal one.
//! - **Handshake**: `ws://user:pass@host/` and `--auth` send Basic credentials (never
//!   printed: the URL is shown without them), `--origin`, `--subprotocol` repeatable.

use std::ffi::{CStr, OsString};
use std::io::{Read, Write};
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::client::Response;
use clap::Parser;
use ws_common::lines::{BinaryOutput, message_from_json, pipe_line};
use ws_common::session::{AfterEof, Handler, SessionOptions};
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
    /// Do not offer permessage-deflate (offered by default; used when the server agrees)
    #[arg(short = 'x')]
    no_deflate: bool,
    /// Maximum wait between reconnection attempts, in ms
    #[arg(long = "max_wait", default_value_t = 10_000, value_name = "MS")]
    max_wait: u64,
    /// Heartbeat ping interval in seconds; 0 or less disables it
    #[arg(long = "ping_interval", default_value_t = 30, allow_negative_numbers = true, value_name = "S")]
    ping_interval: i64,
    /// Offer this subprotocol (Sec-WebSocket-Protocol; repeatable: offered in order)
    #[arg(long)]
    subprotocol: Vec<String>,
    /// Send Basic credentials USER:PASSWORD (as does ws://user:pass@host/)
    #[arg(long, value_name = "USER:PASSWORD")]
    auth: Option<String>,
    /// Origin header to send
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Send this text message first on every connection (repeatable)
    #[arg(long = "send", value_name = "TEXT")]
    send: Vec<String>,
    /// Messages as JSON objects {"type":"text"|"binary","data":...} (binary as base64):
    /// printed so in a pipe, and input lines of that form are sent as what they describe
    #[arg(long)]
    jsonl: bool,
    /// In a pipe: how binary messages are printed
    #[arg(long = "binary-output", value_enum, default_value_t = BinaryOutput::Raw)]
    binary_output: BinaryOutput,
    /// At the end of input, keep the connection open until the server closes it
    #[arg(long = "no-close")]
    no_close: bool,
    /// Seconds to wait for the server's close after ours (at the end of input)
    #[arg(long = "close-timeout", default_value_t = 5.0, value_name = "S")]
    close_timeout: f64,
    /// Exit (after closing with 1000) once N messages have been received
    #[arg(long = "max-messages", value_name = "N")]
    max_messages: Option<u64>,
    /// Same as --max-messages 1
    #[arg(short = '1', conflicts_with = "max_messages")]
    one: bool,
    /// Exit (after closing with 1000) after S seconds without a received message
    #[arg(long = "idle-timeout", value_name = "S")]
    idle_timeout: Option<f64>,
    /// Gunzip each received message before printing it
    #[arg(short = 'g')]
    gunzip: bool,
    /// Echo every received message back and exit when the connection closes (for test drivers)
    #[arg(long)]
    echo: bool,
    /// In a pipe: also print the progress lines (connected, headers, sizes, closes) on stderr
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Largest message accepted, in bytes (larger ones close the connection with 1009)
    #[arg(long = "max-message-size", default_value_t = DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    max_message_size: usize,
    #[command(flatten)]
    client: ClientArgs,
}

struct ConnectHandler {
    /// stdout is a terminal.
    terminal: bool,
    jsonl: bool,
    binary_output: BinaryOutput,
    /// stdout went away (the reader of the pipe left): the session ends.
    gone: bool,
    binary: bool,
    gunzip: bool,
    echo: bool,
}

impl Handler for ConnectHandler {
    fn on_open(&mut self, url: &Url, response: &Response) {
        info!("ws_connect: connected");
        info!("Uri: {}", ws_common::url::request_target(url));
        info!("Handshake Headers:");
        ws_common::ws::log_headers(response);
    }

    fn on_line(&mut self, line: &str) -> Option<Message> {
        if self.echo {
            return None;
        }
        if self.jsonl
            && let Some(m) = message_from_json(line)
        {
            return Some(m);
        }
        Some(if self.binary { Message::Binary(line.as_bytes().to_vec().into()) } else { Message::Text(line.into()) })
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Option<Message> {
        if self.binary {
            return Some(Message::Binary(bytes.to_vec().into()));
        }
        error!("ws_connect: a line of input is not UTF-8, so not a text message: skipped (-b sends lines as bytes)");
        None
    }

    fn on_message(&mut self, msg: &Message) -> Option<Message> {
        match msg {
            Message::Text(t) => {
                info!("Received {} bytes", t.len());
                if self.echo {
                    return Some(msg.clone());
                }
                self.print_payload(t.as_bytes(), false);
            }
            Message::Binary(b) => {
                info!("Received {} bytes", b.len());
                if self.echo {
                    return Some(msg.clone());
                }
                self.print_payload(b, true);
            }
            Message::Ping(_) => info!("Received ping"),
            Message::Pong(p) => info!("Received pong {}", String::from_utf8_lossy(p)),
            Message::Close(_) | Message::Frame(_) => {}
        }
        None
    }

    fn on_close(&mut self, code: u16, reason: &str) {
        // In a quiet pipe a failure is told once, by the exit line.
        if ws_common::log::enabled(ws_common::log::Level::Info) {
            plain(format_args!("ws_connect: connection closed: code {code} reason {reason}"));
        }
    }

    fn exit_on_close(&self) -> bool {
        self.echo
    }

    fn finished(&self) -> bool {
        self.gone
    }

    fn prompt_commands(&self) -> bool {
        true
    }
}

impl ConnectHandler {
    fn print_payload(&mut self, payload: &[u8], binary: bool) {
        let mut out = Vec::new();
        let payload = if self.gunzip {
            match flate2::read::GzDecoder::new(payload).read_to_end(&mut out) {
                Ok(_) => &out[..],
                Err(e) => return error!("Error decompressing: {e}"),
            }
        } else {
            payload
        };
        if self.terminal {
            // The reference's line; a peer's CR, ESC or OSC must not drive the terminal.
            let text = String::from_utf8_lossy(payload);
            let text = ws_common::log::escape_controls(&text, true);
            return plain(format_args!("ws_connect: received message: {text}"));
        }
        let line = pipe_line(payload, binary, self.jsonl, self.binary_output, None);
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(&line).and_then(|_| stdout.flush()).is_err() {
            self.gone = true;
        }
    }
}

/// `user:pass@` taken out of the URL (so that it is neither sent in the Host header nor
/// printed), percent-decoded.
fn take_userinfo(url: &mut Url) -> Option<String> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(credentials)
}

#[derive(Debug, Default)]
struct Connect;

impl Plugin for Connect {
    const NAME: &'static CStr = c"connect";
    const SUMMARY: &'static CStr = c"Connect to a remote server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        // In a pipe, stdout carries the messages only, and stderr only what went wrong
        // (with -v, the reference's progress lines too).
        let chatty = terminal || args.echo || args.verbose;
        if !terminal && !args.echo {
            ws_common::log::all_to_stderr();
        }
        if !chatty {
            ws_common::log::set_level(ws_common::log::Level::Warning);
        }
        let mut url = ws_common::url::parse_ws_url(&args.url)?;
        let mut headers = ws_common::headers::parse_headers(&args.headers)?;
        for (k, v) in &headers {
            let secret = k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("proxy-authorization");
            info!("{k}: {}", if secret { "(hidden)" } else { v.as_str() });
        }
        let userinfo = take_userinfo(&mut url);
        // Shown as typed, unless that would show a password.
        let shown = if userinfo.is_some() { url.to_string() } else { args.url.clone() };
        if let Some(credentials) = userinfo.or(args.auth.clone()) {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
            headers.push(("Authorization".into(), format!("Basic {basic}")));
        }
        if let Some(origin) = &args.origin {
            headers.push(("Origin".into(), origin.clone()));
        }
        args.client.prepare()?;
        let client = ClientOptions {
            headers,
            subprotocol: (!args.subprotocol.is_empty()).then(|| args.subprotocol.join(", ")),
            max_message: args.max_message_size,
            deflate: !args.no_deflate,
            ..args.client.options(url.clone())
        };
        let after_eof = if args.no_close {
            AfterEof::KeepOpen
        } else if args.echo {
            AfterEof::Grace(Duration::from_millis(500))
        } else {
            AfterEof::Close {
                quiet: Duration::from_millis(500),
                timeout: Duration::from_secs_f64(args.close_timeout.max(0.0)),
            }
        };
        let opts = SessionOptions {
            reconnect: !args.disable_reconnect && !args.echo,
            max_wait: Duration::from_millis(args.max_wait),
            ping_interval: (args.ping_interval > 0 && !args.echo)
                .then(|| Duration::from_secs(args.ping_interval as u64)),
            after_eof,
            max_messages: if args.one { Some(1) } else { args.max_messages },
            idle_timeout: args.idle_timeout.map(|s| Duration::from_secs_f64(s.max(0.0))),
            on_open: args.send.iter().map(|t| Message::Text(t.as_str().into())).collect(),
            ..SessionOptions::new(client, "ws_connect")
        };
        if chatty {
            plain(format_args!("Type Ctrl-D to exit prompt..."));
            plain(format_args!("Connecting to url: {shown}"));
        }
        // An echo driver answers the server only; its stdin (often /dev/null) is not input.
        let (_keep_open, input) = if args.echo {
            let (tx, rx) = smol::channel::unbounded();
            (Some(tx), rx)
        } else {
            (None, ws_common::prompt::spawn("> ", "connect"))
        };
        let mut handler = ConnectHandler {
            terminal,
            jsonl: args.jsonl,
            binary_output: args.binary_output,
            gone: false,
            binary: args.binary,
            gunzip: args.gunzip,
            echo: args.echo,
        };
        ws_common::runtime::block_on(|_| ws_common::session::run(opts, input, &mut handler))
    }
}

declare_plugin!(Connect);
