//! permessage-deflate as a byte stream beneath tungstenite, which has no extension hook and
//! refuses every frame with RSV1 set.
//!
//! [`DeflateIo`] sits between tungstenite and the socket and speaks frames on both sides:
//!
//! - **Inbound**, a message whose first frame has RSV1 set is inflated as its fragments
//!   arrive (§7.2.2: the payloads, then `00 00 ff ff`) and handed up as plain frames of at
//!   most [`UP_CHUNK`] bytes. The inflated size counts against the message limit *while it
//!   grows*, so a compressed bomb is refused (1009) before it is allocated. Control frames
//!   and uncompressed messages pass through as they are.
//! - **Outbound**, each data message tungstenite writes is compressed as its bytes arrive
//!   (§7.2.1: deflate, sync flush, drop the final `00 00 ff ff`) and sent with RSV1 on its
//!   first frame, masked again with tungstenite's own key on the client side. Every message
//!   is compressed, even a short one (as Python websockets does): short messages gain from
//!   the window of earlier ones, and some peers mishandle an uncompressed message on a
//!   compressed connection (kosoku's Autobahn cases 12.x.1 fail on one). Frames that already
//!   carry RSV1 pass as they are: messages compressed once for many receivers.
//!
//! A violation found here reaches tungstenite as a frame it rejects with the right close
//! code (a header over the size limit for 1009, a reserved bit for 1002), so every
//! subcommand closes the connection as it does for any other bad frame; [`DeflateIo::failure`]
//! keeps the real reason for the log. Compressors are made on first use and dropped after
//! each message when the agreement has no context takeover on that side, so an idle
//! connection holds no compression state.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_lite::io::{AsyncRead, AsyncWrite};

use super::Agreement;
use crate::frames::{self, FrameError, Header, MAX_HEADER, op};

/// The largest frame of inflated data handed to tungstenite.
pub const UP_CHUNK: usize = 16 * 1024;
/// zlib level. Measured on 1 KiB JSON-like messages (`ws bench --deflate --payload json`,
/// both ends ws): level 1 (zlib-rs's quick mode) 4.0× smaller at 126k round trips/s, 2 4.8×
/// at 52k, 3 5.3× at 49k, 6 5.6× at 29k. Level 3 is within 5 % of 6's size at 1.7× its speed.
pub const LEVEL: u32 = 3;
/// Bytes waiting for the socket before a write waits for it.
const OUT_HIGH: usize = 256 * 1024;
/// The most bytes of one write taken at a time.
const WRITE_STEP: usize = 256 * 1024;
/// The tail a sync flush ends with, dropped from a message's last frame and put back before
/// inflating it.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// A compressed message being inflated.
#[derive(Debug)]
struct Inbound {
    opcode: u8,
    /// Its first frame went up already (the rest go up as continuations).
    started: bool,
    /// Bytes inflated so far.
    size: usize,
    /// The deflate stream ended (a block with BFINAL): the rest of the message is ignored.
    ended: bool,
}

#[derive(Debug, Clone, Copy)]
enum ReadState {
    Header,
    Pass(u64),
    Inflate {
        left: u64,
        mask: Option<[u8; 4]>,
        off: usize,
        fin: bool,
    },
    /// The message's payload is in: inflating the restored tail (`at` bytes of it done).
    Finish {
        at: usize,
    },
}

/// Compressed input inflated per step.
const INFLATE_STEP: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
enum WriteState {
    Header,
    Pass(u64),
    Compress { left: u64, mask: Option<[u8; 4]>, off: usize, fin: bool, first: Option<u8> },
}

/// Bytes through a [`DeflateIo`] so far: on the socket (compressed) and on tungstenite's
/// side (inflated), each way; frame headers included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub wire_read: u64,
    pub plain_read: u64,
    pub wire_written: u64,
    pub plain_written: u64,
}

/// A socket with permessage-deflate done on both directions; see the module docs.
pub struct DeflateIo<S> {
    counters: Counters,
    inner: S,
    server: bool,
    agreed: Agreement,
    max_message: usize,
    // Inbound.
    inb: Vec<u8>,
    inb_pos: usize,
    up: Vec<u8>,
    up_pos: usize,
    rstate: ReadState,
    /// A data message (compressed or not) awaits its continuations.
    r_fragmented: bool,
    msg: Option<Inbound>,
    inflater: Option<Box<Decompress>>,
    inflated: Vec<u8>,
    /// Compressed input, unmasked, for one inflate step.
    step: Vec<u8>,
    /// The inflater paused with output still to come (see [`Self::inflate`]).
    paused: bool,
    failure: Option<String>,
    // Outbound.
    whead: [u8; MAX_HEADER],
    whead_len: usize,
    wstate: WriteState,
    /// The outgoing message in progress is being compressed here (not already compressed).
    w_compressing: bool,
    /// Whether messages that start from now on are compressed (see [`Self::set_compress`]).
    compress: bool,
    deflater: Option<Box<Compress>>,
    body: Vec<u8>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
}

impl<S> std::fmt::Debug for DeflateIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateIo").field("server", &self.server).field("agreed", &self.agreed).finish_non_exhaustive()
    }
}

impl<S> DeflateIo<S> {
    /// Wraps `inner` after a handshake that agreed `agreed`; `pre_read` holds bytes read past
    /// the handshake (the peer's first frames).
    pub fn new(inner: S, server: bool, agreed: Agreement, max_message: usize, pre_read: Vec<u8>) -> Self {
        DeflateIo {
            counters: Counters::default(),
            inner,
            server,
            agreed,
            max_message,
            inb: pre_read,
            inb_pos: 0,
            up: Vec::new(),
            up_pos: 0,
            rstate: ReadState::Header,
            r_fragmented: false,
            msg: None,
            inflater: None,
            inflated: Vec::new(),
            step: Vec::new(),
            paused: false,
            failure: None,
            whead: [0; MAX_HEADER],
            whead_len: 0,
            wstate: WriteState::Header,
            w_compressing: false,
            compress: true,
            deflater: None,
            body: Vec::new(),
            scratch: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// Whether the messages that start from now on are compressed: RFC 7692 §6.1 lets a
    /// sender send any message uncompressed, and content that would not shrink is sent
    /// faster as it is (`ws send` turns it off for a file that does not compress).
    pub fn set_compress(&mut self, on: bool) {
        self.compress = on;
    }

    /// The bytes that passed so far (for `ws bench`'s compression ratios).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What was agreed in the handshake.
    pub fn agreement(&self) -> Agreement {
        self.agreed
    }

    /// Why the inbound side stopped, if it did: the reason behind the close code tungstenite
    /// reported.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The socket beneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Turns the bytes read so far into frames for tungstenite, as far as they go (stopping
    /// once [`UP_CHUNK`] bytes wait to be taken).
    fn process_inbound(&mut self) -> Result<(), FrameError> {
        while self.up.len() - self.up_pos < UP_CHUNK {
            // Output a paused inflater still holds comes first (the tail's state does its own).
            if self.paused && !matches!(self.rstate, ReadState::Finish { .. }) {
                let (_, complete) = self.inflate(&[], FlushDecompress::None)?;
                self.paused = !complete;
                continue;
            }
            let avail = self.inb.len() - self.inb_pos;
            match self.rstate {
                ReadState::Header => {
                    let buf = &self.inb[self.inb_pos..];
                    let Some(h) = Header::parse_with(buf, self.server, self.max_message, true)? else { return Ok(()) };
                    let raw = self.inb_pos..self.inb_pos + h.size;
                    self.inb_pos += h.size;
                    let data = h.opcode & 0x8 == 0;
                    if h.rsv1 && (!data || h.opcode == op::CONTINUATION) {
                        return Err(FrameError::Protocol("RSV1 set on a control or continuation frame"));
                    }
                    if data {
                        frames::check_order(h.opcode, self.r_fragmented)?;
                        self.r_fragmented = !h.fin;
                    }
                    if h.rsv1 {
                        self.msg = Some(Inbound { opcode: h.opcode, started: false, size: 0, ended: false });
                    }
                    if data && self.msg.is_some() {
                        self.rstate = ReadState::Inflate { left: h.len, mask: h.mask, off: 0, fin: h.fin };
                    } else {
                        self.up.extend_from_slice(&self.inb[raw]);
                        self.rstate = ReadState::Pass(h.len);
                    }
                }
                ReadState::Pass(0) => self.rstate = ReadState::Header,
                ReadState::Pass(left) => {
                    if avail == 0 {
                        return Ok(());
                    }
                    let n = avail.min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.up.extend_from_slice(&self.inb[self.inb_pos..self.inb_pos + n]);
                    self.inb_pos += n;
                    self.rstate = ReadState::Pass(left - n as u64);
                }
                ReadState::Inflate { left, mask, off, fin } => {
                    let n = avail.min(INFLATE_STEP).min(usize::try_from(left).unwrap_or(usize::MAX));
                    if n == 0 && left > 0 {
                        return Ok(());
                    }
                    // Unmask a copy: what the step does not take is read again, still masked.
                    let mut step = std::mem::take(&mut self.step);
                    step.clear();
                    step.extend_from_slice(&self.inb[self.inb_pos..self.inb_pos + n]);
                    if let Some(m) = mask {
                        frames::apply_mask_at(&mut step, m, off);
                    }
                    let done = self.inflate(&step, FlushDecompress::None);
                    self.step = step;
                    let (took, complete) = done?;
                    self.paused = !complete;
                    self.inb_pos += took;
                    let left = left - took as u64;
                    self.rstate = match (left, fin) {
                        (0, true) => ReadState::Finish { at: 0 },
                        (0, false) => ReadState::Header,
                        _ => ReadState::Inflate { left, mask, off: off + took, fin },
                    };
                }
                ReadState::Finish { at } => {
                    let (took, complete) = self.inflate(&TAIL[at..], FlushDecompress::Sync)?;
                    self.paused = !complete;
                    if !complete {
                        self.rstate = ReadState::Finish { at: at + took };
                        continue;
                    }
                    self.rstate = ReadState::Header;
                    self.hand_up(true);
                    let msg = self.msg.take().expect("a compressed message");
                    if self.agreed.receive_no_context_takeover {
                        self.inflater = None;
                    } else if msg.ended
                        && let Some(inf) = self.inflater.as_mut()
                    {
                        inf.reset(false);
                    }
                    self.inflated = Vec::new();
                }
            }
        }
        Ok(())
    }

    /// Inflates `input`, a piece of the current message, handing up full chunks; pauses once
    /// [`UP_CHUNK`] bytes wait for tungstenite, so that what a piece inflates to is never held
    /// at once. Returns the bytes of `input` taken and whether they are all inflated and out
    /// (false: paused; call again with the rest).
    fn inflate(&mut self, input: &[u8], flush: FlushDecompress) -> Result<(usize, bool), FrameError> {
        let bits = self.agreed.receive_window_bits.max(9);
        let inf = self.inflater.get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        let msg = self.msg.as_mut().expect("a compressed message");
        let mut at = 0;
        while !msg.ended {
            if self.inflated.len() == UP_CHUNK {
                let opcode = if msg.started { op::CONTINUATION } else { msg.opcode };
                msg.started = true;
                frames::push_header(&mut self.up, opcode, UP_CHUNK, None);
                self.up.extend_from_slice(&self.inflated);
                self.inflated.clear();
                if self.up.len() - self.up_pos >= UP_CHUNK {
                    return Ok((at, false));
                }
            }
            self.inflated.reserve_exact(UP_CHUNK - self.inflated.len());
            let (in0, out0) = (inf.total_in(), inf.total_out());
            let status = inf
                .decompress_vec(&input[at..], &mut self.inflated, flush)
                .map_err(|_| FrameError::Protocol("invalid compressed data"))?;
            let (took, made) = ((inf.total_in() - in0) as usize, (inf.total_out() - out0) as usize);
            at += took;
            msg.size += made;
            if msg.size > self.max_message {
                return Err(FrameError::TooBig(msg.size as u64, self.max_message));
            }
            if status == Status::StreamEnd {
                msg.ended = true;
            }
            let room = self.inflated.len() < UP_CHUNK;
            if (at == input.len() && room) || (took == 0 && made == 0 && room) {
                break;
            }
        }
        // After the end of the deflate stream the rest of the message is ignored.
        Ok((if msg.ended { input.len() } else { at }, true))
    }

    /// Hands up what is inflated of the current message as one frame.
    fn hand_up(&mut self, fin: bool) {
        let msg = self.msg.as_mut().expect("a compressed message");
        let opcode = if msg.started { op::CONTINUATION } else { msg.opcode };
        msg.started = true;
        frames::push_header(&mut self.up, if fin { 0x80 } else { 0 } | opcode, self.inflated.len(), None);
        self.up.extend_from_slice(&self.inflated);
        self.inflated.clear();
    }

    /// Stops reading after `e`: tungstenite gets a frame it refuses with `e`'s close code.
    fn poison(&mut self, e: FrameError) {
        match e {
            FrameError::TooBig(..) => {
                // A header longer than tungstenite's frame limit: refused on sight, 1009.
                self.up.extend_from_slice(&[0x80 | op::BINARY, 127]);
                self.up.extend_from_slice(&(self.max_message as u64 + 1).to_be_bytes());
            }
            FrameError::Io(_) => {}
            // A frame with RSV2 set: "reserved bits are non-zero", 1002.
            _ => self.up.extend_from_slice(&[0x80 | 0x20 | op::BINARY, 0]),
        }
        self.failure = Some(e.to_string());
        self.inb = Vec::new();
        self.inb_pos = 0;
    }

    /// Takes `input`, a piece of tungstenite's encoded frames, compressing data messages.
    fn process_outbound(&mut self, input: &[u8]) {
        let mut i = 0;
        while i < input.len() {
            match self.wstate {
                WriteState::Header => {
                    let want = if self.whead_len < 2 { 2 } else { frames::header_len(self.whead[1]) };
                    let n = (want - self.whead_len).min(input.len() - i);
                    self.whead[self.whead_len..self.whead_len + n].copy_from_slice(&input[i..i + n]);
                    self.whead_len += n;
                    i += n;
                    if self.whead_len >= 2 && self.whead_len == frames::header_len(self.whead[1]) {
                        self.start_outbound_frame();
                    }
                }
                WriteState::Pass(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.wstate = if left == n as u64 { WriteState::Header } else { WriteState::Pass(left - n as u64) };
                }
                WriteState::Compress { left, mask, off, fin, first } => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    let piece = &input[i..i + n];
                    i += n;
                    match mask {
                        Some(m) => {
                            let mut scratch = std::mem::take(&mut self.scratch);
                            scratch.clear();
                            scratch.extend_from_slice(piece);
                            frames::apply_mask_at(&mut scratch, m, off);
                            self.compress(&scratch, FlushCompress::None);
                            self.scratch = scratch;
                        }
                        None => self.compress(piece, FlushCompress::None),
                    }
                    let left = left - n as u64;
                    self.wstate = WriteState::Compress { left, mask, off: off + n, fin, first };
                    if left == 0 {
                        self.finish_outbound_frame();
                    }
                }
            }
        }
    }

    /// A whole header is in `whead`: decide how its frame goes out.
    fn start_outbound_frame(&mut self) {
        let size = self.whead_len;
        self.whead_len = 0;
        let h = &self.whead[..size];
        let (b0, fin, opcode) = (h[0], h[0] & 0x80 != 0, h[0] & 0x0f);
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        let mask = (h[1] & 0x80 != 0).then(|| h[size - 4..size].try_into().expect("4 bytes"));
        // Data frames are compressed, except the frames of a message that came compressed
        // already (RSV1 on its first frame).
        let compress = opcode & 0x8 == 0
            && if opcode == op::CONTINUATION {
                self.w_compressing
            } else {
                self.w_compressing = b0 & 0x70 == 0 && self.compress;
                self.w_compressing
            };
        if compress {
            self.body.clear();
            let first = (opcode != op::CONTINUATION).then_some(opcode);
            self.wstate = WriteState::Compress { left: len, mask, off: 0, fin, first };
            if len == 0 {
                self.finish_outbound_frame();
            }
        } else {
            self.out.extend_from_slice(&self.whead[..size]);
            self.wstate = if len == 0 { WriteState::Header } else { WriteState::Pass(len) };
        }
    }

    fn compress(&mut self, input: &[u8], flush: FlushCompress) {
        let bits = self.agreed.send_window_bits.max(9);
        let def = self
            .deflater
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(Compression::new(LEVEL), false, bits)));
        let mut at = 0;
        loop {
            self.body.reserve((input.len() - at) / 2 + 64);
            let before = def.total_in();
            // Errors are impossible here: the stream is ours and never finished.
            let _ = def.compress_vec(&input[at..], &mut self.body, flush);
            at += (def.total_in() - before) as usize;
            if at == input.len() && self.body.len() < self.body.capacity() {
                break;
            }
        }
    }

    /// The frame's payload is all in: flush, frame it, queue it for the socket.
    fn finish_outbound_frame(&mut self) {
        let WriteState::Compress { mask, fin, first, .. } = self.wstate else { return };
        self.compress(&[], FlushCompress::Sync);
        if fin && self.body.ends_with(&TAIL) {
            self.body.truncate(self.body.len() - TAIL.len());
        }
        let b0 = if fin { 0x80 } else { 0 } | first.map_or(op::CONTINUATION, |o| 0x40 | o);
        frames::push_header(&mut self.out, b0, self.body.len(), mask);
        let start = self.out.len();
        self.out.extend_from_slice(&self.body);
        if let Some(m) = mask {
            frames::apply_mask(&mut self.out[start..], m);
        }
        if self.body.capacity() > OUT_HIGH {
            self.body = Vec::new();
        }
        if fin && self.agreed.send_no_context_takeover {
            self.deflater = None;
        }
        self.wstate = WriteState::Header;
    }
}

impl<S: AsyncWrite + Unpin> DeflateIo<S> {
    /// Writes everything queued for the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
            self.counters.wire_written += n as u64;
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > OUT_HIGH {
            self.out = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeflateIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.up_pos < this.up.len() {
                let n = buf.len().min(this.up.len() - this.up_pos);
                buf[..n].copy_from_slice(&this.up[this.up_pos..this.up_pos + n]);
                this.up_pos += n;
                this.counters.plain_read += n as u64;
                if this.up_pos == this.up.len() {
                    this.up.clear();
                    this.up_pos = 0;
                    if this.up.capacity() > 4 * UP_CHUNK {
                        this.up = Vec::new();
                    }
                }
                return Poll::Ready(Ok(n));
            }
            if this.failure.is_some() {
                return Poll::Ready(Ok(0));
            }
            // Bytes to use, or inflated output still to come without more of them.
            if this.inb_pos < this.inb.len() || this.paused || matches!(this.rstate, ReadState::Finish { .. }) {
                if let Err(e) = this.process_inbound() {
                    this.poison(e);
                    continue;
                }
                if this.up_pos < this.up.len() {
                    continue;
                }
            }
            // Everything read is used (or waits for more): make room and read on.
            if this.inb_pos == this.inb.len() {
                this.inb.clear();
                this.inb_pos = 0;
                if this.inb.capacity() > 4 * UP_CHUNK {
                    this.inb = Vec::new();
                }
            } else if this.inb_pos > 0 {
                this.inb.drain(..this.inb_pos);
                this.inb_pos = 0;
            }
            let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            this.inb.extend_from_slice(&buf[..n]);
            this.counters.wire_read += n as u64;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeflateIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // The payload of a frame that passes as it is (control frames, messages sent
        // uncompressed) goes straight from tungstenite's buffer to the socket once nothing
        // waits before it: no copy.
        if let WriteState::Pass(left) = this.wstate
            && this.out_pos == this.out.len()
            && !buf.is_empty()
        {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]))?;
            this.wstate =
                if written as u64 == left { WriteState::Header } else { WriteState::Pass(left - written as u64) };
            this.counters.wire_written += written as u64;
            this.counters.plain_written += written as u64;
            return Poll::Ready(Ok(written));
        }
        if this.out.len() - this.out_pos >= OUT_HIGH {
            ready!(this.poll_drain(cx))?;
        }
        let n = buf.len().min(WRITE_STEP);
        this.process_outbound(&buf[..n]);
        this.counters.plain_written += n as u64;
        // Write through at once, as a socket would: tungstenite's server sends its last close
        // frame without a flush. What the socket does not take now goes at the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}
