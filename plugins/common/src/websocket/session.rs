//! The life of an interactive WebSocket client (`connect`, `ping`, `chat`): connect, send
//! what the user types, print what arrives, keep a heartbeat, reconnect with backoff, and
//! stop cleanly at end of input.
//!
//! Fixes over the reference: lines typed before the connection opens are queued and sent
//! on open (the reference dropped them); end of piped input sends the queue and then ends
//! as the subcommand asks ([`AfterEof`]: a grace period, a close once replies stop, or
//! waiting for the server), instead of hanging or racing; a connection that never opens, a
//! fatal refusal (bad certificate, HTTP 4xx, close 4001/1008) or an abnormal close with
//! reconnection off ends the run with exit code 1. Limits (`max_messages`, `idle_timeout`),
//! messages sent on every open, and the prompt commands `/stop`, `/start`, `/ping [PAYLOAD]`
//! and `/close [CODE [REASON]]` live here too.
//!
//! Each subcommand supplies a [`Handler`] that turns lines into messages and prints events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::runtime::Timer;
use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};
use smol::channel::Receiver;

use crate::prompt::Input;
use crate::ws::{ClientOptions, Message, WsStream, backoff, close_frame, close_parts, connect};
use ws_plugin_api::Error;

/// What a session does when its input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterEof {
    /// Wait this long for replies, then close with 1000 (the reference's way: `chat`, `ping`).
    Grace(Duration),
    /// Once no message has arrived for `quiet`, close with 1000 and keep taking messages
    /// until the server's close arrives, at most `timeout`: replies in flight are not lost.
    /// (Closing at once lost them: Python `websockets` servers stop sending as soon as
    /// they read a close, even the replies to messages read before it.)
    Close { quiet: Duration, timeout: Duration },
    /// Keep the connection open until the server closes it (or a limit fires).
    KeepOpen,
}

/// How a session behaves, from the subcommand's flags.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub client: ClientOptions,
    /// Reconnect after a close or a failed attempt (off with `-d`).
    pub reconnect: bool,
    /// Longest wait between attempts.
    pub max_wait: Duration,
    /// Heartbeat ping period; `None` disables it.
    pub ping_interval: Option<Duration>,
    /// What to do when input ends.
    pub after_eof: AfterEof,
    /// End (close 1000, exit 0) after this many received messages.
    pub max_messages: Option<u64>,
    /// End (close 1000, exit 0) after this long without a received message.
    pub idle_timeout: Option<Duration>,
    /// Sent first on every connection (before queued lines), again after each reconnect.
    pub on_open: Vec<Message>,
    /// Prefix of the error lines (`ws connect`).
    pub name: &'static str,
}

impl SessionOptions {
    /// The reference's defaults: reconnect with backoff up to 10 s, no heartbeat, and half a
    /// second for replies after the last line of piped input.
    pub fn new(client: ClientOptions, name: &'static str) -> Self {
        SessionOptions {
            client,
            reconnect: true,
            max_wait: Duration::from_millis(10_000),
            ping_interval: None,
            after_eof: AfterEof::Grace(Duration::from_millis(500)),
            max_messages: None,
            idle_timeout: None,
            on_open: Vec::new(),
            name,
        }
    }
}

/// What a subcommand does with each event.
pub trait Handler {
    /// The connection opened.
    fn on_open(
        &mut self,
        url: &crate::url::Url,
        response: &async_tungstenite::tungstenite::handshake::client::Response,
    );
    /// A line of input; returns what to send, if anything (it may print an error instead).
    fn on_line(&mut self, line: &str) -> Option<Message>;
    /// A piped line that is not UTF-8; by default it is taken as text, lossily.
    fn on_bytes(&mut self, bytes: &[u8]) -> Option<Message> {
        self.on_line(&String::from_utf8_lossy(bytes))
    }
    /// A message arrived; returns a reply to send, if any.
    fn on_message(&mut self, msg: &Message) -> Option<Message>;
    /// The connection closed with `code` and `reason` (1006 when it just died).
    fn on_close(&mut self, code: u16, reason: &str);
    /// Whether the session should end after the first close (an echo driver does).
    fn exit_on_close(&self) -> bool {
        false
    }
    /// Whether `/ping [PAYLOAD]` and `/close [CODE [REASON]]` are commands (in `connect`)
    /// rather than text to send (`ping` sends `/close` as a message, as the reference does).
    fn prompt_commands(&self) -> bool {
        false
    }
    /// Whether the session should end now (the handler's output went away, say): checked
    /// after each message.
    fn finished(&self) -> bool {
        false
    }
}

enum Event {
    Input(Input),
    Ws(Option<Result<Message, async_tungstenite::tungstenite::Error>>),
    Tick,
    GraceOver,
    Idle,
}

/// How one connected period ended.
enum Ended {
    /// Closed by the peer or the network: `(code, reason)`.
    Closed(u16, String),
    /// End of input, closed by us.
    Eof,
    /// `/stop` typed.
    Stopped,
}

/// Close codes that mean "you are not welcome": reconnecting cannot help.
fn is_refusal(code: u16) -> bool {
    code == 1008 || code == 4001
}

/// Whether a close code counts as a clean end.
fn is_normal(code: u16) -> bool {
    matches!(code, 1000 | 1001 | 1005)
}

/// Runs the session until input ends or a fatal condition; returns the exit status.
pub async fn run(opts: SessionOptions, input: Receiver<Input>, handler: &mut impl Handler) -> Result<(), Error> {
    let mut pending: VecDeque<Message> = VecDeque::new();
    let mut eof = false;
    let mut stopped = false;
    let mut attempt: u32 = 0;
    loop {
        if stopped {
            match input.recv().await.unwrap_or(Input::Eof) {
                Input::Line(l) if l == "/start" => {
                    crate::info!("Starting connection...");
                    stopped = false;
                    attempt = 0;
                }
                Input::Line(l) => queue_line(handler, &mut pending, &l),
                Input::Bytes(b) => pending.extend(handler.on_bytes(&b)),
                Input::Eof => return Ok(()),
            }
            continue;
        }
        // Connect, while still taking input (queued) and noticing EOF.
        let attempt_result = {
            let mut conn = Box::pin(connect(&opts.client));
            loop {
                let ev = async { Some(conn.as_mut().await) }
                    .or(async {
                        if eof {
                            std::future::pending::<()>().await;
                        }
                        let i = input.recv().await.unwrap_or(Input::Eof);
                        match i {
                            Input::Line(l) => {
                                queue_line(handler, &mut pending, &l);
                            }
                            Input::Bytes(b) => pending.extend(handler.on_bytes(&b)),
                            Input::Eof => eof = true,
                        }
                        None
                    })
                    .await;
                if let Some(r) = ev {
                    break r;
                }
            }
        };
        let (mut ws, response) = match attempt_result {
            Ok(ok) => ok,
            Err(e) => {
                let fatal = e.is_fatal() || !opts.reconnect || eof;
                if fatal {
                    return Err(Error::failure(format!("cannot connect to {}: {e}", opts.client.url)));
                }
                let wait = backoff(attempt, opts.max_wait);
                crate::error!("{}: connection error: {e}", opts.name);
                crate::info!("{}: #retries: {} wait time(ms): {}", opts.name, attempt + 1, wait.as_millis());
                if wait_or_eof(wait, &input, handler, &mut pending, &mut eof).await {
                    return Err(Error::failure(format!("cannot connect to {}: {e}", opts.client.url)));
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        attempt = 0;
        handler.on_open(&opts.client.url, &response);
        let ended = connected(&opts, &mut ws, &input, handler, &mut pending, &mut eof).await;
        match ended {
            Ended::Eof => return Ok(()),
            Ended::Stopped => stopped = true,
            Ended::Closed(code, reason) => {
                if handler.exit_on_close() {
                    return Ok(());
                }
                if is_refusal(code) {
                    return Err(Error::failure(format!("server refused the connection: code {code} reason {reason}")));
                }
                if eof || !opts.reconnect {
                    return if is_normal(code) {
                        Ok(())
                    } else {
                        Err(Error::failure(format!("connection closed: code {code} reason {reason}")))
                    };
                }
                let wait = backoff(attempt, opts.max_wait);
                crate::info!("{}: reconnecting in {} ms", opts.name, wait.as_millis());
                if wait_or_eof(wait, &input, handler, &mut pending, &mut eof).await {
                    return Ok(());
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

fn queue_line(handler: &mut impl Handler, pending: &mut VecDeque<Message>, line: &str) {
    let command = line.split(' ').next().unwrap_or_default();
    if handler.prompt_commands() && matches!(command, "/ping" | "/close") {
        crate::warning!("{command}: not connected now; ignored");
        return;
    }
    if let Some(m) = handler.on_line(line) {
        pending.push_back(m);
    }
}

/// Sleeps `d`, queueing input meanwhile; true if input ended (the caller stops).
async fn wait_or_eof(
    d: Duration,
    input: &Receiver<Input>,
    handler: &mut impl Handler,
    pending: &mut VecDeque<Message>,
    eof: &mut bool,
) -> bool {
    if *eof {
        return true;
    }
    let deadline = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let got = async { Some(input.recv().await.unwrap_or(Input::Eof)) }
            .or(async {
                Timer::at(deadline).await;
                None
            })
            .await;
        match got {
            None => return false,
            Some(Input::Eof) => {
                *eof = true;
                return true;
            }
            Some(Input::Line(l)) => queue_line(handler, pending, &l),
            Some(Input::Bytes(b)) => pending.extend(handler.on_bytes(&b)),
        }
    }
}

async fn connected(
    opts: &SessionOptions,
    ws: &mut WsStream,
    input: &Receiver<Input>,
    handler: &mut impl Handler,
    pending: &mut VecDeque<Message>,
    eof: &mut bool,
) -> Ended {
    let first = opts.on_open.iter().cloned();
    let queued: Vec<Message> = pending.drain(..).collect();
    for m in first.chain(queued) {
        if let Err(end) = send(ws, handler, Some(m)).await {
            return end;
        }
    }
    let mut pings_sent: u64 = 0;
    let mut pong_seen = true;
    let mut next_ping = opts.ping_interval.map(|_| Instant::now());
    let mut received: u64 = 0;
    let mut idle_until = opts.idle_timeout.map(|d| Instant::now() + d);
    // When the session ends by itself: the grace after input ended, or the bound on the
    // server's answer to our close.
    let mut grace_until = None;
    let mut close_sent = false;
    if *eof {
        grace_until = input_ended(opts);
    }
    loop {
        let ev = async { Event::Ws(ws.next().await) }
            .or(async {
                if *eof {
                    std::future::pending::<()>().await;
                }
                Event::Input(input.recv().await.unwrap_or(Input::Eof))
            })
            .or(async {
                match next_ping {
                    Some(t) => Timer::at(t).await,
                    None => std::future::pending().await,
                };
                Event::Tick
            })
            .or(async {
                match grace_until {
                    Some(t) => Timer::at(t).await,
                    None => std::future::pending().await,
                };
                Event::GraceOver
            })
            .or(async {
                match idle_until {
                    Some(t) => Timer::at(t).await,
                    None => std::future::pending().await,
                };
                Event::Idle
            })
            .await;
        match ev {
            Event::Input(Input::Eof) => {
                *eof = true;
                grace_until = input_ended(opts);
            }
            Event::Idle => {
                let idle = opts.idle_timeout.unwrap_or_default();
                crate::info!("{}: no message for {} s: closing", opts.name, idle.as_secs_f64());
                close_normally(ws, handler).await;
                return Ended::Eof;
            }
            Event::Input(Input::Line(l)) if l == "/stop" => {
                crate::info!("Stopping connection...");
                close_normally(ws, handler).await;
                return Ended::Stopped;
            }
            Event::Input(Input::Line(l)) if l == "/start" => {}
            Event::Input(Input::Line(l)) if handler.prompt_commands() && (l == "/ping" || l.starts_with("/ping ")) => {
                let payload = l.strip_prefix("/ping").unwrap_or_default().trim_start().as_bytes().to_vec();
                if payload.len() > 125 {
                    crate::error!("{}: a ping payload is at most 125 bytes ({} given)", opts.name, payload.len());
                } else {
                    let _ = ws.send(Message::Ping(payload.into())).await;
                }
            }
            Event::Input(Input::Line(l))
                if handler.prompt_commands() && (l == "/close" || l.starts_with("/close ")) =>
            {
                let mut words = l.strip_prefix("/close").unwrap_or_default().trim_start().splitn(2, ' ');
                let code = words.next().filter(|w| !w.is_empty()).map(str::parse::<u16>);
                let reason = words.next().unwrap_or("").to_string();
                match code {
                    Some(Err(_)) => crate::error!("{}: usage: /close [CODE [REASON]]", opts.name),
                    Some(Ok(c)) if !crate::ws::CloseCode::from(c).is_allowed() => {
                        crate::error!("{}: {c} is not a close code that may be sent", opts.name)
                    }
                    code => {
                        let code = code.and_then(Result::ok).unwrap_or(1000);
                        close_and_drain(ws, code, &reason).await;
                        handler.on_close(code, &reason);
                        return Ended::Closed(code, reason);
                    }
                }
            }
            Event::Input(Input::Bytes(b)) => {
                let m = handler.on_bytes(&b);
                if let Err(end) = send(ws, handler, m).await {
                    return end;
                }
            }
            Event::Input(Input::Line(l)) => {
                let m = handler.on_line(&l);
                if let Err(end) = send(ws, handler, m).await {
                    return end;
                }
            }
            Event::GraceOver => match opts.after_eof {
                AfterEof::Close { timeout, .. } if !close_sent => {
                    // Quiet since the end of input: close, and print what still comes.
                    let _ = ws.close(Some(close_frame(1000, "Normal closure"))).await;
                    close_sent = true;
                    grace_until = Some(Instant::now() + timeout);
                }
                AfterEof::Close { timeout, .. } => {
                    let s = timeout.as_secs_f64();
                    crate::warning!("{}: the server did not answer our close within {s} s", opts.name);
                    return Ended::Eof;
                }
                _ => {
                    close_normally(ws, handler).await;
                    return Ended::Eof;
                }
            },
            Event::Tick => {
                let Some(period) = opts.ping_interval else { continue };
                if !pong_seen {
                    close_and_drain(ws, 1011, "Ping timeout").await;
                    handler.on_close(1011, "Ping timeout");
                    return Ended::Closed(1011, "Ping timeout".into());
                }
                let payload = format!("ixwebsocket::heartbeat::{}s::{pings_sent}", period.as_secs());
                pings_sent += 1;
                pong_seen = false;
                next_ping = Some(Instant::now() + period);
                let _ = ws.send(Message::Ping(payload.into_bytes().into())).await;
            }
            Event::Ws(None) => {
                handler.on_close(1006, "Abnormal closure");
                return Ended::Closed(1006, "Abnormal closure".into());
            }
            Event::Ws(Some(Err(e))) => {
                let code = crate::ws::fail(ws, &e).await.unwrap_or(1006);
                let reason = crate::ws::reason(ws, &e);
                handler.on_close(code, &reason);
                return Ended::Closed(code, reason);
            }
            Event::Ws(Some(Ok(msg))) => {
                if let Message::Close(frame) = &msg {
                    let (code, reason) = close_parts(frame.as_ref());
                    // tungstenite queued the close reply; flush it out.
                    let _ = ws.flush().await;
                    handler.on_close(code, &reason);
                    return Ended::Closed(code, reason);
                }
                if matches!(msg, Message::Pong(_)) {
                    pong_seen = true;
                }
                let data = matches!(msg, Message::Text(_) | Message::Binary(_));
                if data {
                    received += 1;
                    idle_until = opts.idle_timeout.map(|d| Instant::now() + d);
                    if let (true, false, AfterEof::Close { quiet, .. }) = (*eof, close_sent, opts.after_eof) {
                        grace_until = Some(Instant::now() + quiet);
                    }
                }
                let reply = handler.on_message(&msg);
                if let Err(end) = send(ws, handler, reply).await {
                    return end;
                }
                if handler.finished() || (data && opts.max_messages.is_some_and(|n| received >= n)) {
                    close_normally(ws, handler).await;
                    return Ended::Eof;
                }
            }
        }
    }
}

/// Sends `m`, if any; a connection that cannot take it has ended (1006, told to `handler`).
async fn send(ws: &mut WsStream, handler: &mut impl Handler, m: Option<Message>) -> Result<(), Ended> {
    let Some(m) = m else { return Ok(()) };
    ws.send(m).await.map_err(|e| {
        handler.on_close(1006, &e.to_string());
        Ended::Closed(1006, e.to_string())
    })
}

/// When input has ended, the next step of [`AfterEof`] is due at the returned time.
fn input_ended(opts: &SessionOptions) -> Option<Instant> {
    match opts.after_eof {
        AfterEof::Grace(d) | AfterEof::Close { quiet: d, .. } => Some(Instant::now() + d),
        AfterEof::KeepOpen => None,
    }
}

/// Our close 1000 at the end of a session (input over, a limit reached, `/stop`), told to
/// the handler as the reference tells every close: its closing line
/// (`ws_connect: connection closed: code 1000 reason Normal closure`, …).
async fn close_normally(ws: &mut WsStream, handler: &mut impl Handler) {
    close_and_drain(ws, 1000, "Normal closure").await;
    handler.on_close(1000, "Normal closure");
}

/// Sends a close frame and reads until the peer answers (at most 2 s).
pub async fn close_and_drain(ws: &mut WsStream, code: u16, reason: &str) {
    let _ = ws.close(Some(close_frame(code, reason))).await;
    let _ = async { while let Some(Ok(_)) = ws.next().await {} }
        .or(async {
            Timer::after(Duration::from_secs(2)).await;
        })
        .await;
}
