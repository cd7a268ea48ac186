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

/// The read and write halves of a relay side (a plain socket's reads skip the EAGAIN after
/// a read that emptied it: the event loop does that, see `ws_common::sockets::evloop`).
pub type ReadHalf = Box<dyn AsyncRead + Unpin>;
pub type WriteHalf = Box<dyn AsyncWrite + Unpin>;

/// Splits a stream for the relay: a plain socket by cloning it (no lock between the
/// halves), TLS through a shared lock.
pub fn halves(s: ws_common::net::Stream) -> (ReadHalf, WriteHalf) {
    match s {
        ws_common::net::Stream::Plain(conn) => (Box::new(conn.clone()), Box::new(conn)),
        tls => {
            let (r, w) = futures_lite::io::split(tls);
            (Box::new(r), Box::new(w))
        }
    }
}

/// Where a side's outgoing stream stands, for the frames of our own: a forwarded data frame
/// may be partly out, and pongs then wait for its end. Shared by the async writer ([`Out`])
/// and the relay thread.
#[derive(Debug, Default)]
pub struct OutState {
    /// Bytes taken for this side and not written yet (the relay thread's; [`Out`] writes at
    /// once, but takes over what the thread left).
    pub pending: Vec<u8>,
    /// A forwarded data frame is partly written: nothing else may go out until it ends.
    pub mid_frame: bool,
    /// Pongs waiting for that frame's end, whole frames one after another.
    pub pongs: Vec<u8>,
}

/// Past this many bytes of waiting pongs, only the latest is kept (RFC 6455 §5.5.3 allows
/// answering just the most recent ping), so a ping flood cannot grow the queue.
const MAX_WAITING_PONGS: usize = 4096;

impl OutState {
    /// Notes whether forwarded bytes ended inside a data frame; returns the waiting pongs
    /// when they may go out now.
    pub fn forwarded(&mut self, mid_frame: bool) -> Option<Vec<u8>> {
        self.mid_frame = mid_frame;
        (!mid_frame && !self.pongs.is_empty()).then(|| std::mem::take(&mut self.pongs))
    }

    /// Pongs to send: the bytes to write now, or `None` when they wait for a frame's end.
    pub fn pongs_now(&mut self, pongs: &[Vec<u8>]) -> Option<Vec<u8>> {
        if !self.mid_frame {
            return Some(pongs.concat());
        }
        for pong in pongs {
            if self.pongs.len() + pong.len() > MAX_WAITING_PONGS {
                self.pongs.clear();
            }
            self.pongs.extend_from_slice(pong);
        }
        None
    }
}

/// One side's write half, shared by the pump that forwards to it, the pump that answers its
/// pings, and at the end whoever closes it.
pub struct Out {
    half: WriteHalf,
    state: OutState,
}

impl Out {
    pub fn new(half: WriteHalf) -> Self {
        Out { half, state: OutState::default() }
    }

    /// Takes over a side from the relay thread: what it had not written goes out first (a
    /// failure shows at the next write).
    pub async fn resume(half: WriteHalf, mut state: OutState) -> Self {
        let pending = std::mem::take(&mut state.pending);
        let mut out = Out { half, state };
        let _ = out.write(&pending).await;
        out
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        bytes.is_empty() || (self.half.write_all(bytes).await.is_ok() && self.half.flush().await.is_ok())
    }
}

/// Writes forwarded bytes; `mid_frame` says whether they end inside a data frame. Pongs
/// that were waiting go out once they do not. False if the connection is gone.
pub async fn forward(to: &Mutex<Out>, bytes: &[u8], mid_frame: bool) -> bool {
    let mut out = to.lock().await;
    if !out.write(bytes).await {
        return false;
    }
    match out.state.forwarded(mid_frame) {
        Some(pongs) => out.write(&pongs).await,
        None => true,
    }
}

/// Sends pongs (whole frames) between forwarded frames: now, or when the data frame that
/// is partly out ends. False if the connection is gone.
pub async fn send_pongs(to: &Mutex<Out>, pongs: &[Vec<u8>]) -> bool {
    let mut out = to.lock().await;
    match out.state.pongs_now(pongs) {
        Some(bytes) => out.write(&bytes).await,
        None => true,
    }
}

/// Sends a close frame of our own, unless a data frame is partly out (the stream is broken
/// then, and the connection is just dropped). False if not sent.
pub async fn send_close(to: &Mutex<Out>, frame: &[u8]) -> bool {
    let mut out = to.lock().await;
    !out.state.mid_frame && out.write(frame).await
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
/// pongs are (masked when they go to the upstream). It holds the bytes read and not yet
/// passed on (an incomplete header or control frame), so the relay thread and the async
/// pump can hand a direction to each other.
pub struct Pump {
    from_client: bool,
    max_frame: usize,
    /// permessage-deflate was agreed end to end: RSV1 may mark a message's first frame.
    deflate: bool,
    /// Payload bytes of the current data frame still to pass through.
    remaining: u64,
    /// Inside a fragmented message.
    in_message: bool,
    buf: Vec<u8>,
    filled: usize,
    skips: Vec<std::ops::Range<usize>>,
    scratch: Vec<u8>,
}

/// What the bytes read so far make (from [`Pump::batch`]).
pub struct Batch {
    /// The bytes to forward are `buf[..pos]` without the skipped control frames.
    pos: usize,
    /// The close that ended the direction, if one passed.
    pub close: Option<(u16, String)>,
    /// The broken frame that ends it (after what was whole before it).
    pub failed: Option<FrameError>,
}

impl Pump {
    pub fn new(from_client: bool, max_frame: usize, deflate: bool) -> Self {
        Pump {
            from_client,
            max_frame,
            deflate,
            remaining: 0,
            in_message: false,
            buf: vec![0u8; 64 * 1024],
            filled: 0,
            skips: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Scans the bytes read so far, after `n` more were read into [`Pump::space`]; pongs
    /// for pings among them go to `pongs`.
    pub fn batch(&mut self, n: usize, pongs: &mut Vec<Vec<u8>>) -> Batch {
        self.filled += n;
        let mut skips = std::mem::take(&mut self.skips);
        skips.clear();
        let buf = std::mem::take(&mut self.buf);
        let batch = match self.scan(&buf[..self.filled], &mut skips, pongs) {
            Ok((pos, close)) => Batch { pos, close, failed: None },
            // Pass on what was whole before the bad frame, then report it.
            Err((pos, e)) => Batch { pos, close: None, failed: Some(e) },
        };
        self.buf = buf;
        self.skips = skips;
        batch
    }

    /// Whether the bytes of the last batch end inside a data frame.
    pub fn mid_frame(&self) -> bool {
        self.remaining > 0
    }

    /// The bytes of `batch` to forward: straight from the buffer unless a control frame
    /// was taken out.
    pub fn forwardable(&mut self, batch: &Batch) -> &[u8] {
        if self.skips.is_empty() {
            return &self.buf[..batch.pos];
        }
        self.scratch.clear();
        gather(&self.buf, batch.pos, &self.skips, &mut self.scratch);
        &self.scratch
    }

    /// Drops the bytes of `batch` from the buffer.
    pub fn consume(&mut self, batch: &Batch) {
        self.buf.copy_within(batch.pos..self.filled, 0);
        self.filled -= batch.pos;
    }

    /// Relays from `from` to `to` until a close passes or something ends it; pongs for
    /// `from`'s pings go to `back` (the writer of `from`'s connection).
    pub async fn run(&mut self, from: &mut ReadHalf, to: &Mutex<Out>, back: &Mutex<Out>) -> Ended {
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        loop {
            let n = match from.read(self.space()).await {
                Ok(0) | Err(_) => return Ended::Gone,
                Ok(n) => n,
            };
            let batch = self.batch(n, &mut pongs);
            let mid_frame = self.mid_frame();
            let sent = forward(to, self.forwardable(&batch), mid_frame).await;
            if let Some(e) = batch.failed {
                return Ended::Failed(e);
            }
            if !sent {
                return Ended::WriteGone;
            }
            self.consume(&batch);
            if !pongs.is_empty() {
                let _ = send_pongs(back, &pongs).await;
                pongs.clear();
            }
            if let Some((code, reason)) = batch.close {
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
            let head = match Header::parse_with(&data[pos..], self.from_client, self.max_frame, self.deflate) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err((pos, e)),
            };
            if head.rsv1 && (head.opcode & 0x8 != 0 || head.opcode == op::CONTINUATION) {
                return Err((pos, FrameError::Protocol("RSV1 set on a control or continuation frame")));
            }
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
                    let close = frames::check_close(&payload).map_err(|e| (pos, e))?;
                    return Ok((pos + total, Some(close)));
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

/// Appends to `out` what `scan` forwards of `data[..pos]`: everything but the skips.
fn gather(data: &[u8], pos: usize, skips: &[std::ops::Range<usize>], out: &mut Vec<u8>) {
    let mut at = 0;
    for r in skips {
        out.extend_from_slice(&data[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&data[at..pos]);
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
        let mut p = Pump::new(true, 1 << 20, false);
        let text = masked(true, op::TEXT, b"hello");
        let ping = masked(true, op::PING, b"p");
        let close = masked(true, op::CLOSE, &frames::close_payload(4001, "bye"));
        let after = masked(true, op::TEXT, b"late");
        let stream = [text.clone(), ping, close.clone(), after.clone()].concat();
        let (mut skips, mut pongs) = (Vec::new(), Vec::new());
        let (used, closed) = p.scan(&stream, &mut skips, &mut pongs).unwrap();
        assert_eq!(used, stream.len() - after.len());
        let mut forwarded = Vec::new();
        gather(&stream, used, &skips, &mut forwarded);
        assert_eq!(forwarded, [text, close].concat(), "data and the close; no ping");
        assert_eq!(pongs, vec![frames::encode(true, op::PONG, b"p", None)], "the client's pong is unmasked");
        assert_eq!(closed, Some((4001, "bye".to_string())));
    }

    #[test]
    fn pongs_wait_for_the_end_of_a_partly_written_frame_and_stay_bounded() {
        let pong = |p: &[u8]| frames::encode(true, op::PONG, p, None);
        let mut out = OutState::default();
        assert_eq!(out.pongs_now(&[pong(b"a")]), Some(pong(b"a")), "between frames: at once");
        assert_eq!(out.forwarded(true), None, "a frame is partly out");
        assert_eq!(out.pongs_now(&[pong(b"b"), pong(b"c")]), None, "they wait");
        assert_eq!(out.forwarded(true), None, "still inside the frame");
        assert_eq!(out.forwarded(false), Some([pong(b"b"), pong(b"c")].concat()), "the frame ended: all of them");
        assert_eq!(out.forwarded(false), None);
        out.forwarded(true);
        let flood: Vec<Vec<u8>> = (0..1000u32).map(|i| pong(&i.to_be_bytes())).collect();
        assert_eq!(out.pongs_now(&flood), None);
        assert!(out.pongs.len() <= MAX_WAITING_PONGS, "bounded: {}", out.pongs.len());
        assert!(out.pongs.ends_with(&pong(&999u32.to_be_bytes())), "the latest is kept");
    }

    #[test]
    fn frames_split_across_reads_resume_where_they_stopped() {
        let frame = frames::encode(true, op::BINARY, &[9u8; 70_000], None);
        let mut p = Pump::new(false, 1 << 20, false);
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
        let err = Pump::new(true, 100, false).scan(&data, &mut skips, &mut pongs).unwrap_err();
        assert_eq!(err.0, good.len(), "the good frame before the bad one still passes");
        let orphan = masked(true, op::CONTINUATION, b"x");
        assert!(Pump::new(true, 100, false).scan(&orphan, &mut skips, &mut pongs).is_err(), "continuation of nothing");
        let big = masked(true, op::BINARY, &[0; 200]);
        assert!(matches!(
            Pump::new(true, 100, false).scan(&big, &mut skips, &mut pongs),
            Err((0, FrameError::TooBig(..)))
        ));
    }

    #[test]
    fn rsv1_passes_only_where_deflate_was_agreed_and_only_on_a_first_frame() {
        let (mut skips, mut pongs) = (Vec::new(), Vec::new());
        let mut compressed = masked(false, op::TEXT, b"\x4a\x04\x00");
        compressed[0] |= 0x40;
        let mut rest = masked(true, op::CONTINUATION, b"\x00");
        let data = [compressed.clone(), rest.clone()].concat();
        assert_eq!(Pump::new(true, 100, true).scan(&data, &mut skips, &mut pongs).unwrap().0, data.len());
        assert!(Pump::new(true, 100, false).scan(&data, &mut skips, &mut pongs).is_err(), "not agreed");
        rest[0] |= 0x40;
        let err = Pump::new(true, 100, true).scan(&[compressed.clone(), rest].concat(), &mut skips, &mut pongs);
        assert_eq!(err.unwrap_err().0, compressed.len(), "RSV1 on a continuation");
    }
}
