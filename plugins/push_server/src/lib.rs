//! `ws push_server`: the server half of the reference's throughput test. A client that
//! connects to `/N` is sent N text messages of `--send_msg` (default `hello world`) as fast
//! as it reads them, then everything it sends is echoed. `ws autoroute URL --msg_count N`
//! is the client half.
//!
//! As the reference, the server exits 0 once its first client has gone (the test's server
//! lives for one run); other clients connected by then are cut. With `-p` (no pongs) the
//! connection runs at the frame level, as `echo_server -p`: tungstenite answers every ping
//! itself, so the pushes are written as frames and the echo is `server::echo_frames`. The shared server skeleton
//! (`ws_common::server`) gives it the limits, TLS, `--unix` and the log lines of the other
//! servers.

use std::cell::Cell;
use std::ffi::{CStr, OsString};
use std::rc::Rc;

use clap::Parser;
use futures_util::SinkExt;
use ws_common::deflate::ServerPolicy;
use ws_common::info;
use ws_common::server::{Client, ServerArgs};
use ws_common::ws::Message;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Push server
#[derive(Debug, Parser)]
#[command(name = "ws push_server", about = "Push server: sends N messages to a client of /N, then echoes")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Decline permessage-deflate
    #[arg(short = 'x')]
    disable_deflate: bool,
    /// Do not answer pings with pongs (frames echoed as they come)
    #[arg(short = 'p')]
    disable_pong: bool,
    /// The message pushed
    #[arg(long = "send_msg", default_value = "hello world", value_name = "TEXT")]
    send_msg: String,
}

/// N from a request path `/N` (`/N?…` too); anything else pushes nothing.
fn count(uri: &str) -> u64 {
    uri.trim_start_matches('/').split(['?', '/']).next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[derive(Debug, Default)]
struct PushServer;

impl Plugin for PushServer {
    const NAME: &'static CStr = c"push_server";
    const SUMMARY: &'static CStr = c"Push server";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut args: Args = ws_common::args::parse(args)?;
        // Frame mode echoes compressed frames as they are (see ServerPolicy::echo_frames).
        let policy = ServerPolicy { echo_frames: args.disable_pong, ..ServerPolicy::default() };
        args.server.deflate = (!args.disable_deflate).then_some(policy);
        let (no_pong, max_message) = (args.disable_pong, args.server.limits.max_message_size);
        let msg: Rc<str> = args.send_msg.clone().into();
        let done = Rc::new(event_flag::Flag::default());
        let finished = done.clone();
        args.server.run_with(false, None, async move || {
            let handle = move |client: Client| {
                let (msg, done) = (msg.clone(), done.clone());
                async move {
                    let end = if no_pong {
                        push_then_echo_frames(client, &msg, max_message).await
                    } else {
                        push_then_echo(client, &msg).await
                    };
                    done.set();
                    end
                }
            };
            // Once the first client has gone (and its closing line is logged): exit 0.
            let background = async move {
                finished.wait().await;
                smol::future::yield_now().await;
            };
            Ok((handle, background))
        })
    }
}

/// A one-shot flag a task can wait for.
mod event_flag {
    use std::cell::Cell;

    #[derive(Default)]
    pub struct Flag {
        set: Cell<bool>,
        event: event_listener::Event,
    }

    impl Flag {
        pub fn set(&self) {
            self.set.set(true);
            self.event.notify(usize::MAX);
        }

        pub async fn wait(&self) {
            while !self.set.get() {
                let l = self.event.listen();
                if self.set.get() {
                    break;
                }
                l.await;
            }
        }
    }
}

/// Pushes N messages, then echoes until the client closes; returns how it ended.
async fn push_then_echo(client: Client, msg: &str) -> (u16, String) {
    let Client { mut ws, handshake, .. } = client;
    let n = count(&handshake.uri);
    info!("Sending {n} messages");
    let sent = Cell::new(0u64);
    let push = async {
        let text: async_tungstenite::tungstenite::Utf8Bytes = msg.into();
        for _ in 0..n {
            ws.feed(Message::Text(text.clone())).await?;
            sent.set(sent.get() + 1);
        }
        ws.flush().await
    };
    if push.await.is_err() {
        info!("Sent {} of {n} messages", sent.get());
        return (1006, "Abnormal closure".into());
    }
    ws_common::server::echo_messages(&mut ws).await
}

/// `-p`: the pushes written as frames (uncompressed, which permessage-deflate allows), then
/// the frame-level echo.
async fn push_then_echo_frames(client: Client, msg: &str, max_message: usize) -> (u16, String) {
    use futures_lite::io::AsyncWriteExt;
    use ws_common::frames::{self, op};
    let Client { ws, handshake, .. } = client;
    let deflate = handshake.deflate.is_some();
    let Some(mut stream) = ws.into_inner().into_plain() else {
        return (1011, "frame mode without the raw socket".into());
    };
    let n = count(&handshake.uri);
    info!("Sending {n} messages");
    let frame = frames::encode(true, op::TEXT, msg.as_bytes(), None);
    // Whole frames in 64 KiB writes.
    let per_write = (64 * 1024 / frame.len()).max(1) as u64;
    let mut left = n;
    while left > 0 {
        let k = left.min(per_write);
        if stream.write_all(&frame.repeat(k as usize)).await.is_err() {
            info!("Sent {} of {n} messages", n - left);
            return (1006, "Abnormal closure".into());
        }
        left -= k;
    }
    if stream.flush().await.is_err() {
        return (1006, "Abnormal closure".into());
    }
    ws_common::server::echo_frames(stream, max_message, deflate).await
}

declare_plugin!(PushServer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_first_path_segment() {
        assert_eq!(count("/1000"), 1000);
        assert_eq!(count("/5?x=1"), 5);
        assert_eq!(count("/7/more"), 7);
        assert_eq!(count("/"), 0);
        assert_eq!(count("/abc"), 0);
    }
}
