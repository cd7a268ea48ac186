//! `ws listen`: a WebSocket server whose clients talk to the terminal — to see what a browser
//! or any client sends, and to answer it by hand or from a script (websocat's `-s PORT`).
//!
//! - Every message a client sends is printed: at a terminal as
//!   `ws_listen: received message: …` (escaped), in a pipe as the payload on its own line
//!   (`--binary-output`, `--jsonl` with `"client":ID`), exactly as `ws connect` prints
//!   ([`ws_common::lines`]). With more than one client connected, the line says whose
//!   (`from #ID`, or `[#ID] ` before a piped payload).
//! - Every line typed or piped in goes to every connected client (`-b`: as binary; `--jsonl`:
//!   lines `{"type":…,"data":…}` are the message they describe); `/to ID LINE` sends to one,
//!   `/clients` lists them. A line with no client connected waits for the first to connect,
//!   so `printf 'hello\n' | ws listen --once` greets its client; nothing is dropped.
//! - `--once`: serve one client and exit when it leaves (0 after a normal close, 1 after an
//!   abnormal one); others are refused with 503 meanwhile. Scripts capture what a client
//!   sends with `ws listen --once --port P > captured.txt`.
//! - The end of piped input closes nothing: the server keeps serving (its stdin is often
//!   `/dev/null`). Ctrl-D at a terminal closes every client with 1001 and exits.
//! - The rest is every server's ([`ws_common::server`]): `--port`/`--host`/`--unix`, TLS,
//!   limits (`--max-message-size`, `--max-connections`, handshake timeout), the reference's
//!   connection log lines (on stderr in a pipe), permessage-deflate unless `-x`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{CStr, OsString};
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};
use smol::channel::{Receiver, Sender};
use ws_common::lines::{BinaryOutput, message_from_json, pipe_line};
use ws_common::prompt::Input;
use ws_common::server::{Client, Gate, ServerArgs};
use ws_common::ws::{self as wsx, Message, Refusal};
use ws_common::{error, info, log::plain};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// WebSocket server for the terminal
#[derive(Debug, Parser)]
#[command(
    name = "ws listen",
    about = "WebSocket server whose clients talk to the terminal: received messages are printed, typed lines are sent"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Serve one client, and exit when it leaves
    #[arg(long)]
    once: bool,
    /// Send each line as a binary message instead of text
    #[arg(short = 'b')]
    binary: bool,
    /// Messages as JSON objects {"client":ID,"type":"text"|"binary","data":...} (binary as
    /// base64): printed so in a pipe, and input lines of that form are sent as what they describe
    #[arg(long)]
    jsonl: bool,
    /// In a pipe: how binary messages are printed
    #[arg(long = "binary-output", value_enum, default_value_t = BinaryOutput::Raw)]
    binary_output: BinaryOutput,
    /// Decline permessage-deflate (accepted by default)
    #[arg(short = 'x')]
    no_deflate: bool,
}

/// Messages queued for one client by the input loop: a few, so a slow client slows the input
/// rather than filling memory.
const QUEUED_PER_CLIENT: usize = 64;

/// What the input loop and the connections share.
struct Shared {
    terminal: bool,
    jsonl: bool,
    binary: bool,
    binary_output: BinaryOutput,
    once: bool,
    /// Connected clients, by id: where the input loop puts their messages.
    clients: RefCell<BTreeMap<u64, Sender<Message>>>,
    /// A client connected (the input loop may be waiting for one).
    joined: event_listener::Event,
    /// With `--once`: a client was taken; and how its connection ended.
    taken: Cell<bool>,
    ended: RefCell<Option<(u16, String)>>,
    left: event_listener::Event,
    /// stdout went away.
    gone: Cell<bool>,
}

impl Shared {
    fn print(&self, id: u64, payload: &[u8], binary: bool) {
        let several = self.clients.borrow().len() > 1;
        if self.terminal {
            let text = String::from_utf8_lossy(payload);
            let text = ws_common::log::escape_controls(&text, true);
            if several {
                return plain(format_args!("ws_listen: received message from #{id}: {text}"));
            }
            return plain(format_args!("ws_listen: received message: {text}"));
        }
        let mut line = pipe_line(payload, binary, self.jsonl, self.binary_output, Some(id).filter(|_| self.jsonl));
        if several && !self.jsonl {
            line.splice(0..0, format!("[#{id}] ").into_bytes());
        }
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(&line).and_then(|_| stdout.flush()).is_err() {
            self.gone.set(true);
        }
    }

    /// The message a typed line stands for.
    fn message(&self, line: &str) -> Message {
        if self.jsonl
            && let Some(m) = message_from_json(line)
        {
            return m;
        }
        if self.binary { Message::Binary(line.as_bytes().to_vec().into()) } else { Message::Text(line.into()) }
    }
}

/// One client's connection: its messages printed, the input loop's sent, until it closes.
async fn talk(shared: Rc<Shared>, client: Client) -> (u16, String) {
    let Client { mut ws, id, .. } = client;
    if shared.once && shared.taken.replace(true) {
        let reason = "ws listen --once serves one client";
        ws_common::session::close_and_drain(&mut ws, 1013, reason).await;
        return (1013, reason.into());
    }
    let (tx, rx) = smol::channel::bounded(QUEUED_PER_CLIENT);
    shared.clients.borrow_mut().insert(id, tx);
    shared.joined.notify(usize::MAX);
    let ended = exchange(&shared, &mut ws, id, &rx).await;
    shared.clients.borrow_mut().remove(&id);
    if shared.once {
        *shared.ended.borrow_mut() = Some(ended.clone());
        shared.left.notify(usize::MAX);
    }
    ended
}

async fn exchange(shared: &Shared, ws: &mut wsx::WsStream, id: u64, rx: &Receiver<Message>) -> (u16, String) {
    enum Ev {
        In(Option<Result<Message, wsx::tungstenite::Error>>),
        Out(Message),
    }
    loop {
        let ev = async { Ev::In(ws.next().await) }
            .or(async {
                match rx.recv().await {
                    Ok(m) => Ev::Out(m),
                    Err(_) => std::future::pending().await,
                }
            })
            .await;
        match ev {
            Ev::In(None) => return (1006, "Abnormal closure".into()),
            Ev::In(Some(Ok(Message::Text(t)))) => {
                info!("Received {} bytes from #{id}", t.len());
                shared.print(id, t.as_bytes(), false);
            }
            Ev::In(Some(Ok(Message::Binary(b)))) => {
                info!("Received {} bytes from #{id}", b.len());
                shared.print(id, &b, true);
            }
            Ev::In(Some(Ok(Message::Close(frame)))) => {
                let _ = ws.flush().await;
                return wsx::close_parts(frame.as_ref());
            }
            Ev::In(Some(Ok(_))) => {}
            Ev::In(Some(Err(e))) => {
                let code = wsx::fail(ws, &e).await.unwrap_or(1006);
                return (code, wsx::reason(ws, &e));
            }
            Ev::Out(Message::Close(frame)) => {
                let (code, reason) = wsx::close_parts(frame.as_ref());
                ws_common::session::close_and_drain(ws, code, &reason).await;
                return (code, reason);
            }
            Ev::Out(m) => {
                if ws.send(m).await.is_err() {
                    return (1006, "Abnormal closure".into());
                }
            }
        }
        if shared.gone.get() {
            ws_common::session::close_and_drain(ws, 1001, "Going away").await;
            return (1001, "Going away".into());
        }
    }
}

/// Reads input until it ends: each line to every client (waiting for one if none is
/// connected), `/to ID LINE` to one, `/clients` lists them.
async fn input_loop(shared: &Shared, input: Receiver<Input>) {
    loop {
        let line = match input.recv().await.unwrap_or(Input::Eof) {
            Input::Line(l) => l,
            Input::Bytes(b) if shared.binary => {
                broadcast(shared, Message::Binary(b.into())).await;
                continue;
            }
            Input::Bytes(_) => {
                error!(
                    "ws_listen: a line of input is not UTF-8, so not a text message: skipped (-b sends lines as bytes)"
                );
                continue;
            }
            Input::Eof => return,
        };
        if line == "/clients" {
            let ids: Vec<String> = shared.clients.borrow().keys().map(|id| format!("#{id}")).collect();
            plain(format_args!("ws_listen: {} connected: {}", ids.len(), ids.join(" ")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("/to ") {
            let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let target = id.trim_start_matches('#').parse::<u64>().ok();
            let tx = target.and_then(|id| shared.clients.borrow().get(&id).cloned());
            match tx {
                Some(tx) => {
                    let _ = tx.send(shared.message(text)).await;
                }
                None => error!("ws_listen: no client {id} (/clients lists them)"),
            }
            continue;
        }
        broadcast(shared, shared.message(&line)).await;
    }
}

/// Sends `m` to every connected client, after waiting for one to connect if none is.
async fn broadcast(shared: &Shared, m: Message) {
    loop {
        let listener = shared.joined.listen();
        if !shared.clients.borrow().is_empty() {
            break;
        }
        listener.await;
    }
    let targets: Vec<Sender<Message>> = shared.clients.borrow().values().cloned().collect();
    for tx in targets {
        let _ = tx.send(m.clone()).await;
    }
}

/// Closes every client with 1001 and waits (a second at most) for them to go.
async fn close_all(shared: &Shared) {
    let targets: Vec<Sender<Message>> = shared.clients.borrow().values().cloned().collect();
    for tx in targets {
        let _ = tx.send(Message::Close(Some(wsx::close_frame(1001, "Going away")))).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !shared.clients.borrow().is_empty() && std::time::Instant::now() < deadline {
        ws_common::runtime::Timer::after(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Default)]
struct Listen;

impl Plugin for Listen {
    const NAME: &'static CStr = c"listen";
    const SUMMARY: &'static CStr = c"WebSocket server for the terminal: print what clients send, type replies";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if !terminal {
            // stdout carries the messages alone.
            ws_common::log::all_to_stderr();
        }
        args.server.deflate = (!args.no_deflate).then(ws_common::deflate::ServerPolicy::default);
        let shared = Rc::new(Shared {
            terminal,
            jsonl: args.jsonl,
            binary: args.binary,
            binary_output: args.binary_output,
            once: args.once,
            clients: RefCell::default(),
            joined: event_listener::Event::new(),
            taken: Cell::new(false),
            ended: RefCell::new(None),
            left: event_listener::Event::new(),
            gone: Cell::new(false),
        });
        // With --once, a second client is refused before its upgrade.
        let gate: Option<Gate> = args.once.then(|| {
            let shared = shared.clone();
            Rc::new(move |_: &wsx::Handshake| {
                if shared.taken.get() {
                    return Err(Refusal { status: 503, reason: "ws listen --once serves one client".into() });
                }
                Ok(())
            }) as Gate
        });
        let input = ws_common::prompt::spawn("> ", "listen");
        let handler_shared = shared.clone();
        let background_shared = shared.clone();
        args.server.run_with(false, gate, async move || {
            let handle = move |client: Client| talk(handler_shared.clone(), client);
            let background = async move {
                let shared = background_shared;
                let input_done = async {
                    input_loop(&shared, input).await;
                    if shared.terminal {
                        close_all(&shared).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                let client_left = async {
                    if !shared.once {
                        return std::future::pending::<()>().await;
                    }
                    loop {
                        let listener = shared.left.listen();
                        if shared.ended.borrow().is_some() {
                            return;
                        }
                        listener.await;
                    }
                };
                input_done.or(client_left).await;
            };
            Ok((handle, background))
        })?;
        match shared.ended.borrow().clone() {
            Some((code, reason)) if !matches!(code, 1000 | 1001 | 1005) => {
                Err(Error::failure(format!("the client's connection ended: code {code} reason {reason}")))
            }
            _ => Ok(()),
        }
    }
}

declare_plugin!(Listen);
