//! Moving data between two open sides, both ways at once, with backpressure and a proper
//! end.
//!
//! - **Messages ↔ bytes.** Each message's payload is written to the stream as it is
//!   (`--line-mode`: followed by `\n`); what the stream gives becomes messages as it comes,
//!   a read (at most 64 KiB) a message, binary unless `--text` (a UTF-8 character cut by a
//!   read waits for its rest; bytes that are not UTF-8 end the bridge with 1007), or with
//!   `--line-mode` one message per line (its `\n` or `\r\n` taken off).
//! - **Backpressure.** Nothing is read from one side before what was read last is written to
//!   the other: a stalled reader stalls the writer, and memory stays at a few buffers.
//!   Messages ready together are written in one system call; messages are flushed when the
//!   stream has nothing more at once.
//! - **Ends.** The stream's end (TCP's FIN, a program closing its stdout) closes the
//!   WebSocket, once no message came for half a second (replies in flight still arrive), with 1000 — 1011 with a reason when a program exited with a failure status or
//!   the stream failed — and what the WebSocket peer still sends before its close reply is
//!   written (TCP half-close honoured). A close from the WebSocket peer shuts the stream's
//!   writing half. Two streams: each direction is copied and its end passed on by itself.
//!   Two WebSockets: messages and the close frame are passed on as they are.

use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_util::future::Either;
use futures_util::{SinkExt, StreamExt};
use ws_common::ws::{self as wsx, Message, WsStream};

use crate::spec::Bytes;

type Sender = async_tungstenite::WebSocketSender<wsx::WsIo>;
type Receiver = async_tungstenite::WebSocketReceiver<wsx::WsIo>;

/// How long a side has to answer a close, or to drain, once the other side ended.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// After the stream's end, how long the WebSocket must be quiet before the bridge closes it
/// (as `ws connect` does at the end of its input): a peer may still be answering what it
/// got, and some (Python's websockets) stop sending once they read a close.
const QUIET: Duration = Duration::from_millis(500);
/// The largest read from a stream: the largest message made from one.
const READ: usize = 64 * 1024;
/// Messages gathered for one write to a stream, at most.
const GATHER: usize = 256 * 1024;

/// How messages and bytes map onto each other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    pub(crate) line: bool,
    pub(crate) text: bool,
}

/// How a bridged connection ended: the close code and reason that went to (or came from)
/// the WebSocket side, and, when something failed, which side and why.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) failed: Option<String>,
}

impl Outcome {
    pub(crate) fn ok(code: u16, reason: impl Into<String>) -> Outcome {
        Outcome { code, reason: reason.into(), failed: None }
    }

    fn failed(code: u16, reason: impl Into<String>, what: String) -> Outcome {
        Outcome { code, reason: reason.into(), failed: Some(what) }
    }
}

/// Turns stream bytes into messages (see the module docs).
struct Framer {
    mode: Mode,
    pending: Vec<u8>,
}

impl Framer {
    fn message(&self, bytes: Vec<u8>) -> Result<Message, Vec<u8>> {
        if self.mode.text {
            String::from_utf8(bytes).map(|s| Message::Text(s.into())).map_err(|e| e.into_bytes())
        } else {
            Ok(Message::Binary(bytes.into()))
        }
    }

    /// The messages `data` completes.
    fn push(&mut self, data: &[u8], out: &mut Vec<Message>) -> Result<(), String> {
        let not_text = || "the stream is not UTF-8 text (--text); without it, messages are binary".to_string();
        self.pending.extend_from_slice(data);
        if self.mode.line {
            let mut start = 0;
            while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
                let mut end = start + i;
                if end > start && self.pending[end - 1] == b'\r' {
                    end -= 1;
                }
                out.push(self.message(self.pending[start..end].to_vec()).map_err(|_| not_text())?);
                start += i + 1;
            }
            self.pending.drain(..start);
            // A line longer than a read goes out in pieces rather than growing without bound.
            if self.pending.len() > READ {
                let piece = std::mem::take(&mut self.pending);
                out.push(self.message(piece).map_err(|_| not_text())?);
            }
            return Ok(());
        }
        let take = if self.mode.text {
            // Up to the last whole character: a cut one waits for its rest.
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => return Err(not_text()),
            }
        } else {
            self.pending.len()
        };
        if take > 0 {
            let rest = self.pending.split_off(take);
            let whole = std::mem::replace(&mut self.pending, rest);
            out.push(self.message(whole).map_err(|_| not_text())?);
        }
        Ok(())
    }

    /// What is left at the stream's end (a last line without its newline).
    fn finish(&mut self) -> Result<Option<Message>, String> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let rest = std::mem::take(&mut self.pending);
        self.message(rest).map(Some).map_err(|_| "the stream ended inside a UTF-8 character (--text)".to_string())
    }
}

/// How the stream-to-WebSocket direction ended.
enum Up {
    /// The stream ended, or failed; the close that went out.
    Sent(Outcome),
}

/// How the WebSocket-to-stream direction ended.
enum Down {
    /// The peer's close frame.
    Closed(u16, String),
    /// The WebSocket failed or vanished.
    Broken(u16, String),
    /// Writing to the stream failed.
    WriteFailed(String),
}

/// A program's exit status, if it exits within a second.
async fn exit_status(child: &mut smol::process::Child) -> Option<std::process::ExitStatus> {
    child
        .status()
        .or(async {
            ws_common::runtime::Timer::after(Duration::from_secs(1)).await;
            Err(std::io::Error::other("still running"))
        })
        .await
        .ok()
}

/// Sends the close `outcome` stands for.
async fn close_with(sink: &mut Sender, outcome: Outcome) -> Up {
    let _ = sink.send(Message::Close(Some(wsx::close_frame(outcome.code, &outcome.reason)))).await;
    Up::Sent(outcome)
}

/// A WebSocket and a byte stream.
pub(crate) async fn messages_and_bytes(
    ws: WsStream,
    ws_name: &str,
    bytes: Bytes,
    bytes_name: &str,
    mode: Mode,
) -> Outcome {
    let (mut sink, mut stream) = ws.split();
    let Bytes { mut read, mut write, mut child } = bytes;
    // When the WebSocket last gave a message: after the stream's end, the close waits until
    // it has been quiet for QUIET (replies in flight are not cut off).
    let last_message = std::cell::Cell::new(std::time::Instant::now());
    let up = Box::pin(async {
        let mut framer = Framer { mode, pending: Vec::new() };
        let mut buf = vec![0u8; READ];
        let mut ready = Vec::new();
        loop {
            let n = match futures_lite::future::poll_once(read.read(&mut buf)).await {
                Some(r) => r,
                None => {
                    if let Err(e) = sink.flush().await {
                        return Up::Sent(Outcome::failed(1006, "", format!("{ws_name}: {e}")));
                    }
                    read.read(&mut buf).await
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    let what = format!("{bytes_name}: {e}");
                    return close_with(&mut sink, Outcome::failed(1011, format!("{bytes_name} failed"), what)).await;
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = framer.push(&buf[..n], &mut ready) {
                return close_with(&mut sink, Outcome::failed(1007, e.clone(), format!("{bytes_name}: {e}"))).await;
            }
            for m in ready.drain(..) {
                if let Err(e) = sink.feed(m).await {
                    return Up::Sent(Outcome::failed(1006, "", format!("{ws_name}: {e}")));
                }
            }
        }
        match framer.finish() {
            Ok(Some(m)) => {
                let _ = sink.feed(m).await;
            }
            Ok(None) => {}
            Err(e) => {
                return close_with(&mut sink, Outcome::failed(1007, e.clone(), format!("{bytes_name}: {e}"))).await;
            }
        }
        if let Err(e) = sink.flush().await {
            return Up::Sent(Outcome::failed(1006, "", format!("{ws_name}: {e}")));
        }
        loop {
            let quiet_until = last_message.get() + QUIET;
            if std::time::Instant::now() >= quiet_until {
                break;
            }
            ws_common::runtime::Timer::at(quiet_until).await;
        }
        // A program's end: its status says whether that was a failure.
        let status = match child.as_mut() {
            Some(c) => exit_status(c).await,
            None => None,
        };
        match status {
            Some(s) if !s.success() => {
                let reason = format!("{bytes_name} exited with {s}");
                close_with(&mut sink, Outcome::failed(1011, reason.clone(), reason)).await
            }
            _ => close_with(&mut sink, Outcome::ok(1000, format!("{bytes_name} ended"))).await,
        }
    });
    let down = Box::pin(async {
        let mut out: Vec<u8> = Vec::with_capacity(READ);
        async fn drain(
            write: &mut std::pin::Pin<Box<dyn futures_lite::AsyncWrite>>,
            out: &mut Vec<u8>,
        ) -> std::io::Result<()> {
            if !out.is_empty() {
                write.write_all(out).await?;
                out.clear();
            }
            write.flush().await
        }
        loop {
            let next = match futures_lite::future::poll_once(stream.next()).await {
                Some(n) => n,
                None => {
                    if let Err(e) = drain(&mut write, &mut out).await {
                        return Down::WriteFailed(format!("{bytes_name}: {e}"));
                    }
                    stream.next().await
                }
            };
            let payload: Option<&[u8]> = match &next {
                Some(Ok(Message::Text(t))) => Some(t.as_bytes()),
                Some(Ok(Message::Binary(b))) => Some(b),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => None,
            };
            if let Some(payload) = payload {
                last_message.set(std::time::Instant::now());
                out.extend_from_slice(payload);
                if mode.line {
                    out.push(b'\n');
                }
                if out.len() >= GATHER
                    && let Err(e) = drain(&mut write, &mut out).await
                {
                    return Down::WriteFailed(format!("{bytes_name}: {e}"));
                }
                continue;
            }
            // The WebSocket ended: what was gathered goes out, then the stream's writing half
            // is shut (its reader sees the end; TCP's other direction stays open).
            let drained = drain(&mut write, &mut out).await;
            let _ = write.close().await;
            if let Err(e) = drained {
                return Down::WriteFailed(format!("{bytes_name}: {e}"));
            }
            return match next {
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = wsx::close_parts(frame.as_ref());
                    Down::Closed(code, reason)
                }
                Some(Err(e)) => Down::Broken(1006, e.to_string()),
                _ => Down::Broken(1006, "Abnormal closure".into()),
            };
        }
    });
    let first = match futures_util::future::select(up, down).await {
        Either::Left((Up::Sent(sent), down)) => {
            // Our close went out: the peer's messages keep flowing to the stream until its reply.
            let _ = down
                .or(async {
                    ws_common::runtime::Timer::after(CLOSE_WAIT).await;
                    Down::Broken(1006, "no close reply".into())
                })
                .await;
            Either::Left(sent)
        }
        Either::Right((down, up)) => {
            drop(up);
            Either::Right(down)
        }
    };
    let outcome = match first {
        Either::Left(sent) => sent,
        Either::Right(Down::Closed(code, reason)) => {
            // tungstenite queued the reply to the peer's close: it goes out with a flush.
            let _ = async {
                let _ = sink.flush().await;
                sink.close(None).await
            }
            .or(async {
                ws_common::runtime::Timer::after(CLOSE_WAIT).await;
                Ok(())
            })
            .await;
            if matches!(code, 1000 | 1001 | 1005) {
                Outcome::ok(code, reason)
            } else {
                let what = format!("{ws_name}: closed with code {code} reason {reason}");
                Outcome::failed(code, reason, what)
            }
        }
        Either::Right(Down::Broken(code, reason)) => {
            Outcome::failed(code, reason.clone(), format!("{ws_name}: {reason}"))
        }
        Either::Right(Down::WriteFailed(what)) => {
            let reason = "the stream side failed";
            let _ = sink.send(Message::Close(Some(wsx::close_frame(1011, reason)))).await;
            Outcome::failed(1011, reason, what)
        }
    };
    if let Some(mut c) = child {
        // A program gets a moment to finish after its stdin closed, then is killed on drop.
        let _ = exit_status(&mut c).await;
    }
    outcome
}

/// Two WebSockets: messages pass as they are; a close passes on and ends the bridge once
/// the other side answers it.
pub(crate) async fn messages_and_messages(a: WsStream, a_name: &str, b: WsStream, b_name: &str) -> Outcome {
    let (mut a_sink, mut a_stream) = a.split();
    let (mut b_sink, mut b_stream) = b.split();
    async fn pass(from: &mut Receiver, from_name: &str, to: &mut Sender, to_name: &str) -> Outcome {
        loop {
            let next = match futures_lite::future::poll_once(from.next()).await {
                Some(n) => n,
                None => {
                    if let Err(e) = to.flush().await {
                        return Outcome::failed(1006, "", format!("{to_name}: {e}"));
                    }
                    from.next().await
                }
            };
            match next {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Err(e) = to.feed(m).await {
                        return Outcome::failed(1006, "", format!("{to_name}: {e}"));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = wsx::close_parts(frame.as_ref());
                    let _ = to.send(Message::Close(Some(wsx::close_frame(code, &reason)))).await;
                    return if matches!(code, 1000 | 1001 | 1005) {
                        Outcome::ok(code, reason)
                    } else {
                        let what = format!("{from_name}: closed with code {code} reason {reason}");
                        Outcome::failed(code, reason, what)
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let reason = format!("{from_name} failed");
                    let _ = to.send(Message::Close(Some(wsx::close_frame(1011, &reason)))).await;
                    return Outcome::failed(1011, reason, format!("{from_name}: {e}"));
                }
                None => {
                    let reason = format!("{from_name} went away");
                    let _ = to.send(Message::Close(Some(wsx::close_frame(1011, &reason)))).await;
                    return Outcome::failed(1011, reason, format!("{from_name}: connection lost"));
                }
            }
        }
    }
    let forward = Box::pin(pass(&mut a_stream, a_name, &mut b_sink, b_name));
    let backward = Box::pin(pass(&mut b_stream, b_name, &mut a_sink, a_name));
    let first = match futures_util::future::select(forward, backward).await {
        Either::Left((first, other)) | Either::Right((first, other)) => {
            let _ = other
                .or(async {
                    ws_common::runtime::Timer::after(CLOSE_WAIT).await;
                    Outcome::ok(1006, "")
                })
                .await;
            first
        }
    };
    // Each side's reply to the close it sent was queued by tungstenite: a flush sends it.
    let _ = futures_lite::future::zip(a_sink.flush(), b_sink.flush())
        .or(async {
            ws_common::runtime::Timer::after(CLOSE_WAIT).await;
            (Ok(()), Ok(()))
        })
        .await;
    first
}

/// Two streams: each direction copied, its end passed on as the writing half's shutdown.
pub(crate) async fn bytes_and_bytes(a: Bytes, a_name: &str, b: Bytes, b_name: &str) -> Outcome {
    let Bytes { read: mut a_read, write: mut a_write, child: _a_child } = a;
    let Bytes { read: mut b_read, write: mut b_write, child: _b_child } = b;
    async fn copy(
        from: &mut std::pin::Pin<Box<dyn futures_lite::AsyncRead>>,
        to: &mut std::pin::Pin<Box<dyn futures_lite::AsyncWrite>>,
    ) -> std::io::Result<u64> {
        let n = futures_lite::io::copy(from, &mut *to).await?;
        to.close().await?;
        Ok(n)
    }
    let (ab, ba) = futures_lite::future::zip(copy(&mut a_read, &mut b_write), copy(&mut b_read, &mut a_write)).await;
    match (ab, ba) {
        (Err(e), _) => Outcome::failed(1011, "", format!("{a_name} → {b_name}: {e}")),
        (_, Err(e)) => Outcome::failed(1011, "", format!("{b_name} → {a_name}: {e}")),
        _ => Outcome::ok(1000, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ms: &[Message]) -> Vec<String> {
        ms.iter().map(|m| m.to_text().unwrap().to_string()).collect()
    }

    #[test]
    fn lines_become_messages_whatever_the_reads() {
        let mut f = Framer { mode: Mode { line: true, text: true }, pending: Vec::new() };
        let mut out = Vec::new();
        f.push(b"PING\r\nhel", &mut out).unwrap();
        f.push(b"lo\n\nlast", &mut out).unwrap();
        assert_eq!(texts(&out), ["PING", "hello", ""]);
        assert_eq!(f.finish().unwrap(), Some(Message::Text("last".into())));
    }

    #[test]
    fn text_waits_for_a_cut_character_and_refuses_bytes_that_are_not_utf8() {
        let mut f = Framer { mode: Mode { line: false, text: true }, pending: Vec::new() };
        let mut out = Vec::new();
        let euro = "€".as_bytes();
        f.push(&[b'a', euro[0], euro[1]], &mut out).unwrap();
        f.push(&[euro[2], b'b'], &mut out).unwrap();
        assert_eq!(texts(&out), ["a", "€b"]);
        assert!(f.push(&[0xff, b'x'], &mut out).is_err());
        let mut f = Framer { mode: Mode { line: false, text: false }, pending: Vec::new() };
        f.push(&[0xff, 0], &mut out).unwrap();
        assert_eq!(out.last(), Some(&Message::Binary(vec![0xff, 0].into())));
    }
}
