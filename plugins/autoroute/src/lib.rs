//! `ws autoroute URL --msg_count N`: the client half of the reference's throughput test. It
//! connects to `URL/N` (a `ws push_server` then pushes N messages), counts what arrives,
//! logs `messages received per second: X` every second, and once N have arrived logs
//! `AUTOROUTE IXWebSocket :: T ms` (T from the opened connection to the Nth message, the
//! reference's line kept as scripts read it), closes with 1000 and exits 0.
//!
//! Fixed: a connection that fails or closes before N messages exits 1 with one line saying
//! how many came (the reference waited forever).

use std::ffi::{CStr, OsString};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_lite::FutureExt;
use futures_util::StreamExt;
use ws_common::info;
use ws_common::ws::{ClientArgs, Message, close_parts};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Autoroute
#[derive(Debug, Parser)]
#[command(name = "ws autoroute", about = "Throughput test client: receive N pushed messages from URL/N and time them")]
struct Args {
    /// Server URL (ws://, wss://, ws+unix://); /N is appended
    url: String,
    /// Messages to receive
    #[arg(long = "msg_count", default_value_t = 1_000_000, value_name = "N")]
    msg_count: u64,
    /// Do not offer permessage-deflate
    #[arg(short = 'x')]
    disable_deflate: bool,
    /// Send a ping every S seconds (0 or less: never)
    #[arg(long = "ping_interval", default_value_t = 30, allow_negative_numbers = true, value_name = "S")]
    ping_interval: i64,
    /// Offer this subprotocol (Sec-WebSocket-Protocol)
    #[arg(long)]
    subprotocol: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `base` with `/n` appended to its path.
fn with_count(base: &str, n: u64) -> String {
    let (head, query) = base.split_once('?').map_or((base, None), |(h, q)| (h, Some(q)));
    // A Unix socket's URL without a request path gets one (ws+unix:///PATH:/n).
    let unix_without_path =
        ["ws+unix:", "wss+unix:"].iter().any(|s| head.strip_prefix(s).is_some_and(|rest| !rest.contains(':')));
    let colon = if unix_without_path { ":" } else { "" };
    let joined = format!("{}{colon}/{n}", head.trim_end_matches('/'));
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

#[derive(Debug, Default)]
struct Autoroute;

impl Plugin for Autoroute {
    const NAME: &'static CStr = c"autoroute";
    const SUMMARY: &'static CStr = c"Throughput test client for push_server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        args.client.prepare()?;
        let url = ws_common::url::parse_ws_url(&with_count(&args.url, args.msg_count))?;
        let opts = ws_common::ws::ClientOptions {
            subprotocol: args.subprotocol.clone(),
            deflate: !args.disable_deflate,
            ..args.client.options(url.clone())
        };
        let ping = (args.ping_interval > 0).then(|| Duration::from_secs(args.ping_interval as u64));
        let n = args.msg_count;
        ws_common::runtime::block_on(|_| async move {
            let (mut ws, _) = ws_common::ws::connect(&opts)
                .await
                .map_err(|e| Error::failure(format!("cannot connect to {url}: {e}")))?;
            let start = Instant::now();
            let (mut received, mut last_second) = (0u64, 0u64);
            let mut tick = ws_common::runtime::Timer::interval(Duration::from_secs(1));
            let mut heartbeat = ping.map(ws_common::runtime::Timer::interval);
            enum Ev {
                Ws(Option<Result<Message, async_tungstenite::tungstenite::Error>>),
                Tick,
                Ping,
            }
            while received < n {
                let ev = async { Ev::Ws(ws.next().await) }
                    .or(async {
                        (&mut tick).await;
                        Ev::Tick
                    })
                    .or(async {
                        match heartbeat.as_mut() {
                            Some(t) => {
                                t.await;
                                Ev::Ping
                            }
                            None => std::future::pending().await,
                        }
                    })
                    .await;
                match ev {
                    Ev::Ws(Some(Ok(Message::Text(_) | Message::Binary(_)))) => received += 1,
                    Ev::Ws(Some(Ok(Message::Close(frame)))) => {
                        let (code, reason) = close_parts(frame.as_ref());
                        return Err(Error::failure(format!(
                            "the server closed ({code} {reason}) after {received} of {n} messages"
                        )));
                    }
                    Ev::Ws(Some(Ok(_))) => {}
                    Ev::Ws(Some(Err(e))) => {
                        return Err(Error::failure(format!("connection failed after {received} of {n} messages: {e}")));
                    }
                    Ev::Ws(None) => {
                        return Err(Error::failure(format!("connection lost after {received} of {n} messages")));
                    }
                    Ev::Tick => {
                        info!("messages received per second: {}", received - last_second);
                        last_second = received;
                    }
                    Ev::Ping => {
                        let _ = ws.send(Message::Ping(Vec::new().into())).await;
                    }
                }
            }
            info!("AUTOROUTE IXWebSocket :: {} ms", start.elapsed().as_millis());
            let _ = ws
                .close(Some(ws_common::ws::close_frame(1000, "Normal closure")))
                .or(async {
                    ws_common::runtime::Timer::after(Duration::from_secs(2)).await;
                    Ok(())
                })
                .await;
            Ok(())
        })
    }
}

declare_plugin!(Autoroute);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_goes_at_the_end_of_the_path() {
        assert_eq!(with_count("ws://h:8008", 5), "ws://h:8008/5");
        assert_eq!(with_count("ws://h:8008/", 5), "ws://h:8008/5");
        assert_eq!(with_count("ws://h/a?x=1", 7), "ws://h/a/7?x=1");
        assert_eq!(with_count("ws+unix:///s.sock:/", 3), "ws+unix:///s.sock:/3");
        assert_eq!(with_count("ws+unix:///s.sock", 3), "ws+unix:///s.sock:/3");
    }
}
