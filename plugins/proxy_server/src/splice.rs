//! The relay after both handshakes: frames pass through *as bytes*. Client frames are
//! already masked, which is what the upstream must receive from us (its client), and
//! upstream frames are unmasked, which is what the client must receive; so data frames are
//! forwarded without being unmasked, re-masked, reassembled or copied into messages, and one
//! read of whatever arrived becomes one write. The headers are still parsed and checked
//! (reserved bits, opcodes, masking, control-frame rules, fragment order, `--max-message-size`
//! per frame), so a broken peer is closed with 1002/1009 as before.
//!
//! Control frames are whole-frame events: pings are answered on their own hop (and not
//! forwarded), pongs end there, and a close passes through with its code and reason. Data
//! frames go out in pieces as they arrive, so a frame of our own (a pong, a close) may only
//! be written between two forwarded frames, never inside one: [`Out`] keeps that rule.
//!
//! Measured (`scripts/bench.sh proxy`): tungstenite per hop cost about 30 % of the proxy's
//! time in decoding, unmasking, masking and UTF-8 checks that the endpoints do anyway.

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::lock::Mutex;
use ws_common::frames::{self, FrameError, Header, op};

/// The read and write halves of a relay side (reads skip the EAGAIN after a drained socket).
pub type ReadHalf = ws_common::net::Drained<Box<dyn AsyncRead + Unpin>>;
pub type WriteHalf = Box<dyn AsyncWrite + Unpin>;

/// Splits a stream for the relay: a plain TCP socket by cloning it (no lock between the
/// halves), TLS through a shared lock.
pub fn halves(s: ws_common::net::Stream) -> (ReadHalf, WriteHalf) {
    match s {
        ws_common::net::Stream::Plain(tcp) => {
            (ws_common::net::Drained::new(Box::new(tcp.clone()), Some(&tcp)), Box::new(tcp))
        }
        tls => {
            let (r, w) = futures_lite::io::split(tls);
            (ws_common::net::Drained::new(Box::new(r), None), Box::new(w))
        }
    }
}

/// One side's write half, shared by the pump that forwards to it, the pump that answers its
/// pings, and at the end whoever closes it.
pub struct Out {
    half: WriteHalf,
    /// A forwarded data frame is partly written: nothing else may go out until it ends.
    mid_frame: bool,
    /// Pongs waiting for that frame's end, whole frames one after another.
    pongs: Vec<u8>,
}

/// Past this many bytes of waiting pongs, only the latest is kept (RFC 6455 §5.5.3 allows
/// answering just the most recent ping), so a ping flood cannot grow the queue.
const MAX_WAITING_PONGS: usize = 4096;

impl Out {
    pub fn new(half: WriteHalf) -> Self {
        Out { half, mid_frame: false, pongs: Vec::new() }
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        self.half.write_all(bytes).await.is_ok() && self.half.flush().await.is_ok()
    }
}

/// Writes forwarded bytes; `mid_frame` says whether they end inside a data frame. Pongs
/// that were waiting go out once they do not. False if the connection is gone.
pub async fn forward(to: &Mutex<Out>, bytes: &[u8], mid_frame: bool) -> bool {
    let mut out = to.lock().await;
    if !bytes.is_empty() && !out.write(bytes).await {
        return false;
    }
    out.mid_frame = mid_frame;
    if mid_frame || out.pongs.is_empty() {
        return true;
    }
    let pongs = std::mem::take(&mut out.pongs);
    out.write(&pongs).await
}

/// Sends pongs (whole frames) between forwarded frames: now, or when the data frame that
/// is partly out ends. False if the connection is gone.
pub async fn send_pongs(to: &Mutex<Out>, pongs: &[Vec<u8>]) -> bool {
    let mut out = to.lock().await;
    if out.mid_frame {
        for pong in pongs {
            if out.pongs.len() + pong.len() > MAX_WAITING_PONGS {
                out.pongs.clear();
            }
            out.pongs.extend_from_slice(pong);
        }
        return true;
    }
    out.write(&pongs.concat()).await
}

/// Sends a close frame of our own, unless a data frame is partly out (the stream is broken
/// then, and the connection is just dropped). False if not sent.
pub async fn send_close(to: &Mutex<Out>, frame: &[u8]) -> bool {
    let mut out = to.lock().await;
    !out.mid_frame && out.write(frame).await
}

/// How one direction ended.
#[derive(Debug)]
pub enum Ended {
    /// A close frame passed through, with its code and reason.
    Closed(u16, String),
    /// The source's connection ended without a close.
    Gone,
    /// The source broke the protocol.
    Failed(FrameError),
    /// Writing to the destination failed.
    WriteGone,
}

/// One direction: `from_client` says which way, so which frames must be masked and how our
/// pongs are (masked when they go to the upstream).
pub struct Pump {
    from_client: bool,
    max_frame: usize,
    /// Payload bytes of the current data frame still to pass through.
    remaining: u64,
    /// Inside a fragmented message.
    in_message: bool,
}

impl Pump {
    pub fn new(from_client: bool, max_frame: usize) -> Self {
        Pump { from_client, max_frame, remaining: 0, in_message: false }
    }

    /// Relays from `from` to `to` until a close passes or something ends it; pongs for
    /// `from`'s pings go to `back` (the writer of `from`'s connection).
    pub async fn run(&mut self, from: &mut ReadHalf, to: &Mutex<Out>, back: &Mutex<Out>) -> Ended {
        let mut buf = vec![0u8; 64 * 1024];
        let mut filled = 0usize;
        let mut out: Vec<u8> = Vec::new();
        let mut skips: Vec<std::ops::Range<usize>> = Vec::new();
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        loop {
            match from.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => return Ended::Gone,
                Ok(n) => filled += n,
            }
            skips.clear();
            let scanned = self.scan(&buf[..filled], &mut skips, &mut pongs);
            let (pos, close, failed) = match scanned {
                Ok((pos, close)) => (pos, close, None),
                // Pass on what was whole before the bad frame, then report it.
                Err((pos, e)) => (pos, None, Some(e)),
            };
            // Usually nothing is skipped and the bytes go out straight from the buffer.
            let bytes: &[u8] = if skips.is_empty() {
                &buf[..pos]
            } else {
                out.clear();
                let mut at = 0;
                for r in &skips {
                    out.extend_from_slice(&buf[at..r.start]);
                    at = r.end;
                }
                out.extend_from_slice(&buf[at..pos]);
                &out
            };
            let sent = forward(to, bytes, self.remaining > 0).await;
            if let Some(e) = failed {
                return Ended::Failed(e);
            }
            if !sent {
                return Ended::WriteGone;
            }
            buf.copy_within(pos..filled, 0);
            filled -= pos;
            if !pongs.is_empty() {
                let _ = send_pongs(back, &pongs).await;
                pongs.clear();
            }
            if let Some((code, reason)) = close {
                return Ended::Closed(code, reason);
            }
        }
    }

    /// Walks the frames in `data`. Every byte before the returned position is forwarded
    /// except the `skips` (pings and pongs, which end on this hop; pongs to send back go to
    /// `pongs`). The rest is an incomplete header or control frame. Also returns the close
    /// that ended the direction, if one passed; on a broken frame, the position before it.
    #[allow(clippy::type_complexity)]
    fn scan(
        &mut self,
        data: &[u8],
        skips: &mut Vec<std::ops::Range<usize>>,
        pongs: &mut Vec<Vec<u8>>,
    ) -> Result<(usize, Option<(u16, String)>), (usize, FrameError)> {
        let mut pos = 0;
        while pos < data.len() {
            if self.remaining > 0 {
                let take = (self.remaining.min((data.len() - pos) as u64)) as usize;
                pos += take;
                self.remaining -= take as u64;
                continue;
            }
            let head = match Header::parse(&data[pos..], self.from_client, self.max_frame) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err((pos, e)),
            };
            if head.opcode & 0x8 != 0 {
                let total = head.size + head.len as usize;
                if data.len() - pos < total {
                    break;
                }
                let mut payload = data[pos + head.size..pos + total].to_vec();
                if let Some(m) = head.mask {
                    frames::apply_mask(&mut payload, m);
                }
                if head.opcode == op::CLOSE {
                    return Ok((pos + total, Some(frames::parse_close(&payload))));
                }
                if head.opcode == op::PING {
                    let mask = (!self.from_client).then(frames::random_mask);
                    pongs.push(frames::encode(true, op::PONG, &payload, mask));
                }
                skips.push(pos..pos + total);
                pos += total;
                continue;
            }
            frames::check_order(head.opcode, self.in_message).map_err(|e| (pos, e))?;
            self.in_message = !head.fin;
            pos += head.size;
            self.remaining = head.len;
        }
        Ok((pos, None))
    }
}

/// What `scan` forwards of `data[..pos]`: everything but the skips.
#[cfg(test)]
fn forwarded(data: &[u8], pos: usize, skips: &[std::ops::Range<usize>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in skips {
        out.extend_from_slice(&data[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&data[at..pos]);
    out
}

/// A close frame from us: unmasked to the client, masked to the upstream.
pub fn close_frame(to_client: bool, code: u16, reason: &str) -> Vec<u8> {
    let mask = (!to_client).then(frames::random_mask);
    frames::encode(true, op::CLOSE, &frames::close_payload(code, reason), mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        frames::encode(fin, opcode, payload, Some([1, 2, 3, 4]))
    }

    #[test]
    fn data_passes_as_is_pings_are_answered_and_a_close_ends_the_scan() {
        let mut p = Pump::new(true, 1 << 20);
        let text = masked(true, op::TEXT, b"hello");
        let ping = masked(true, op::PING, b"p");
        let close = masked(true, op::CLOSE, &frames::close_payload(4001, "bye"));
        let after = masked(true, op::TEXT, b"late");
        let stream = [text.clone(), ping, close.clone(), after.clone()].concat();
        let (mut skips, mut pongs) = (Vec::new(), Vec::new());
        let (used, closed) = p.scan(&stream, &mut skips, &mut pongs).unwrap();
        assert_eq!(used, stream.len() - after.len());
        assert_eq!(forwarded(&stream, used, &skips), [text, close].concat(), "data and the close; no ping");
        assert_eq!(pongs, vec![frames::encode(true, op::PONG, b"p", None)], "the client's pong is unmasked");
        assert_eq!(closed, Some((4001, "bye".to_string())));
    }

    #[test]
    fn frames_split_across_reads_resume_where_they_stopped() {
        let frame = frames::encode(true, op::BINARY, &[9u8; 70_000], None);
        let mut p = Pump::new(false, 1 << 20);
        let (mut skips, mut pongs) = (Vec::new(), Vec::new());
        // Half a header first: nothing used.
        assert_eq!(p.scan(&frame[..1], &mut skips, &mut pongs).unwrap().0, 0);
        let (used, _) = p.scan(&frame[..1000], &mut skips, &mut pongs).unwrap();
        assert_eq!(used, 1000);
        let (used2, _) = p.scan(&frame[1000..], &mut skips, &mut pongs).unwrap();
        assert_eq!(used + used2, frame.len());
        assert!(skips.is_empty());
    }

    #[test]
    fn broken_frames_are_refused_after_what_was_whole() {
        let (mut skips, mut pongs) = (Vec::new(), Vec::new());
        let good = masked(true, op::TEXT, b"ok");
        let unmasked = frames::encode(true, op::TEXT, b"x", None);
        let data = [good.clone(), unmasked].concat();
        let err = Pump::new(true, 100).scan(&data, &mut skips, &mut pongs).unwrap_err();
        assert_eq!(err.0, good.len(), "the good frame before the bad one still passes");
        let orphan = masked(true, op::CONTINUATION, b"x");
        assert!(Pump::new(true, 100).scan(&orphan, &mut skips, &mut pongs).is_err(), "continuation of nothing");
        let big = masked(true, op::BINARY, &[0; 200]);
        assert!(matches!(Pump::new(true, 100).scan(&big, &mut skips, &mut pongs), Err((0, FrameError::TooBig(..)))));
    }
}
