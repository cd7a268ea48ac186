//! The life of an interactive WebSocket client (`connect`, `ping`, `chat`): connect, send
//! what the user types, print what arrives, keep a heartbeat, reconnect with backoff, and
//! stop cleanly at end of input.
//!
//! Fixes over the reference: lines typed before the connection opens are queued and sent
//! on open (the reference dropped them); end of piped input sends the queue, waits a short
//! grace period for replies, closes with 1000 and exits, instead of hanging or racing; a
//! connection that never opens, a fatal refusal (bad certificate, HTTP 4xx, close 4001/1008)
//! or an abnormal close with reconnection off ends the run with exit code 1.
//!
//! Each subcommand supplies a [`Handler`] that turns lines into messages and prints events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};
use smol::Timer;
use smol::channel::Receiver;

use crate::prompt::Input;
use crate::ws::{ClientOptions, Message, WsStream, backoff, close_frame, close_parts, connect};
use ws_plugin_api::Error;

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
    /// How long to wait for replies after the last line of piped input.
    pub grace: Duration,
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
            grace: Duration::from_millis(500),
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
    /// A message arrived; returns a reply to send, if any.
    fn on_message(&mut self, msg: &Message) -> Option<Message>;
    /// The connection closed with `code` and `reason` (1006 when it just died).
    fn on_close(&mut self, code: u16, reason: &str);
    /// Whether the session should end after the first close (an echo driver does).
    fn exit_on_close(&self) -> bool {
        false
    }
}

enum Event {
    Input(Input),
    Ws(Option<Result<Message, async_tungstenite::tungstenite::Error>>),
    Tick,
    GraceOver,
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
    while let Some(m) = pending.pop_front() {
        if let Err(e) = ws.send(m).await {
            handler.on_close(1006, &e.to_string());
            return Ended::Closed(1006, e.to_string());
        }
    }
    let mut pings_sent: u64 = 0;
    let mut pong_seen = true;
    let mut next_ping = opts.ping_interval.map(|_| Instant::now());
    let mut grace_until = eof.then(|| Instant::now() + opts.grace);
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
            .await;
        match ev {
            Event::Input(Input::Eof) => {
                *eof = true;
                grace_until = Some(Instant::now() + opts.grace);
            }
            Event::Input(Input::Line(l)) if l == "/stop" => {
                crate::info!("Stopping connection...");
                close_and_drain(ws, 1000, "Normal closure").await;
                return Ended::Stopped;
            }
            Event::Input(Input::Line(l)) if l == "/start" => {}
            Event::Input(Input::Line(l)) => {
                if let Some(m) = handler.on_line(&l)
                    && let Err(e) = ws.send(m).await
                {
                    handler.on_close(1006, &e.to_string());
                    return Ended::Closed(1006, e.to_string());
                }
            }
            Event::GraceOver => {
                close_and_drain(ws, 1000, "Normal closure").await;
                return Ended::Eof;
            }
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
                let reason = e.to_string();
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
                if let Some(reply) = handler.on_message(&msg)
                    && let Err(e) = ws.send(reply).await
                {
                    handler.on_close(1006, &e.to_string());
                    return Ended::Closed(1006, e.to_string());
                }
            }
        }
    }
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
