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
        let conf = Rc::new(Conf {
            auth: args.http_authorization_header.clone(),
            greetings: args.greetings,
            no_pong: args.disable_pong,
            max_message: args.server.limits.max_message_size,
        });
        args.server.run(false, None, move |client| {
            let conf = conf.clone();
            async move { echo(&conf, client).await }
        })
    }
}

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
    if conf.no_pong {
        return echo_frames(conf, ws, hs.deflate.is_some()).await;
    }
    ws_common::server::echo_messages(&mut ws).await
}

/// `-p`: echo at the frame level, because tungstenite answers every ping by itself. Data
/// frames go back as they come (fragmentation kept), pings are ignored, a close is answered;
/// fragments out of sequence close with 1002 and bad UTF-8 in text with 1007, as without -p.
/// With permessage-deflate (`deflate`), compressed frames go back compressed, RSV1 kept:
/// the client's inflater has seen exactly what its compressor saw, message for message.
async fn echo_frames(conf: &Conf, ws: wsx::WsStream, deflate: bool) -> (u16, String) {
    use futures_lite::io::{AsyncWriteExt, BufReader};
    use ws_common::frames::{self, FrameError, FrameReader, op};
    let Some(stream) = ws.into_inner().into_plain() else {
        return (1011, "frame mode without the raw socket".into());
    };
    let (r, mut w) = futures_lite::io::split(stream);
    let mut reader = FrameReader::new(BufReader::new(r), conf.max_message, true).with_rsv1(deflate);
    let mut message_len = 0usize;
    // The text check of the message in progress: `None` between messages, `Some(None)`
    // inside a binary one.
    let mut current: Option<Option<frames::Utf8Check>> = None;
    loop {
        let frame = reader.next().await.and_then(|f| {
            let Some(f) = f else { return Ok(None) };
            if f.rsv1 && (f.is_control() || f.opcode == op::CONTINUATION) {
                return Err(FrameError::Protocol("RSV1 set on a control or continuation frame"));
            }
            if !f.is_control() {
                if frames::check_order(f.opcode, current.is_some())? {
                    // Compressed text is checked by the client when it inflates the echo.
                    current = Some((f.opcode == op::TEXT && !f.rsv1).then(frames::Utf8Check::default));
                }
                if let Some(Some(check)) = &mut current {
                    check.push(&f.payload, f.fin)?;
                }
                if f.fin {
                    current = None;
                }
            }
            Ok(Some(f))
        });
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return (1006, "Abnormal closure".into()),
            Err(e) => {
                let code = e.close_code();
                if code != 1006 {
                    let close = frames::encode(true, op::CLOSE, &frames::close_payload(code, &e.to_string()), None);
                    let _ = w.write_all(&close).await;
                    let _ = w.flush().await;
                }
                return (code, e.to_string());
            }
        };
        match frame.opcode {
            op::PING => info!("Received ping (not answered: -p)"),
            op::PONG => {}
            op::CLOSE => {
                let _ = w.write_all(&frames::encode(true, op::CLOSE, &frame.payload, None)).await;
                let _ = w.flush().await;
                return frames::parse_close(&frame.payload);
            }
            opcode => {
                message_len += frame.payload.len();
                if frame.fin {
                    info!("Received {message_len} bytes");
                    message_len = 0;
                }
                let mut echoed = Vec::with_capacity(frame.payload.len() + frames::MAX_HEADER);
                let b0 = if frame.fin { 0x80 } else { 0 } | if frame.rsv1 { 0x40 } else { 0 } | opcode;
                frames::push_header(&mut echoed, b0, frame.payload.len(), None);
                echoed.extend_from_slice(&frame.payload);
                if w.write_all(&echoed).await.is_err() || w.flush().await.is_err() {
                    return (1006, "Abnormal closure".into());
                }
            }
        }
    }
}

declare_plugin!(EchoServer);
