//! Frame-level WebSocket I/O, for the jobs tungstenite cannot do in constant memory:
//! receiving a file as the fragments of one message (`receive`) and relaying fragments as
//! they arrive (`transfer`). tungstenite reassembles every message before handing it over.
//!
//! The reader yields one frame at a time (at most `max_frame` bytes of payload, unmasked);
//! the writer encodes single frames, masked when we are the client. Control frames are the
//! caller's job (answer pings, echo the close), as RFC 6455 §5.5 says.

use std::io;

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::net::Stream;
use crate::url::Url;

/// Opcodes of RFC 6455.
pub mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// One frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1: a compressed message's first frame (only where deflate was agreed).
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("frame of {0} bytes is over the limit of {1}")]
    TooBig(u64, usize),
    #[error("invalid UTF-8 in a text message")]
    BadUtf8,
}

impl FrameError {
    /// The close code this error calls for.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::Io(_) => 1006,
            FrameError::Protocol(_) => 1002,
            FrameError::TooBig(..) => 1009,
            FrameError::BadUtf8 => 1007,
        }
    }
}

/// Checks a data frame's place in the message order (RFC 6455 §5.4): a text or binary
/// frame must start a message, a continuation must follow one. `in_message` says whether a
/// fragmented message is in progress; returns whether this frame starts a message.
pub fn check_order(opcode: u8, in_message: bool) -> Result<bool, FrameError> {
    let starting = opcode != op::CONTINUATION;
    if starting == in_message {
        return Err(FrameError::Protocol("fragments out of sequence"));
    }
    Ok(starting)
}

/// Checks a text message for UTF-8 frame by frame, as its fragments pass through, so it
/// fails fast (RFC 6455 §8.1) without holding the message.
#[derive(Debug, Default)]
pub struct Utf8Check {
    /// The start of a character split by a frame boundary (at most 3 bytes).
    carry: Vec<u8>,
}

impl Utf8Check {
    /// Checks the next fragment; `fin` ends the message.
    pub fn push(&mut self, bytes: &[u8], fin: bool) -> Result<(), FrameError> {
        let joined;
        let data = if self.carry.is_empty() {
            bytes
        } else {
            joined = [std::mem::take(&mut self.carry).as_slice(), bytes].concat();
            &joined
        };
        match std::str::from_utf8(data) {
            Ok(_) => {}
            // Incomplete at the end of a fragment that is not the last: keep the tail.
            Err(e) if e.error_len().is_none() && !fin => self.carry = data[e.valid_up_to()..].to_vec(),
            Err(_) => return Err(FrameError::BadUtf8),
        }
        Ok(())
    }
}

/// Reads frames from a byte stream (a buffered reader, so nothing past a frame is lost).
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: BufReader<R>,
    max_frame: usize,
    /// Whether frames must be masked (we are the server) or must not be (we are the client).
    expect_masked: bool,
    /// permessage-deflate was agreed: RSV1 may be set (where is the caller's to check).
    allow_rsv1: bool,
    /// Data frames longer than this come in pieces (0: whole); see [`FrameReader::in_pieces`].
    piece: usize,
    /// The part of a frame still to come in pieces.
    rest: Option<Rest>,
}

#[derive(Debug)]
struct Rest {
    fin: bool,
    mask: Option<[u8; 4]>,
    offset: usize,
    left: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: BufReader<R>, max_frame: usize, expect_masked: bool) -> Self {
        FrameReader { inner, max_frame, expect_masked, allow_rsv1: false, piece: 0, rest: None }
    }

    /// Accepts RSV1, for a connection that agreed permessage-deflate.
    pub fn with_rsv1(mut self, allow: bool) -> Self {
        self.allow_rsv1 = allow;
        self
    }

    /// Hands a data frame longer than `piece` bytes over in pieces of at most that: the first
    /// with the frame's opcode and RSV1 and no FIN, the others as continuations, the last
    /// with the frame's FIN — the shape of a message sent in fragments, so a reader of
    /// fragments reads them as it is, and no frame is held whole whatever its size (a peer
    /// that relays a 1 GiB file as one frame, as Node's `ws` does). Control frames (125
    /// bytes at most) come whole.
    pub fn in_pieces(mut self, piece: usize) -> Self {
        self.piece = piece;
        self
    }

    /// The next piece of the frame being read in pieces.
    async fn next_piece(&mut self) -> Result<Frame, FrameError> {
        let rest = self.rest.as_mut().expect("a frame in progress");
        let n = rest.left.min(self.piece as u64) as usize;
        let mut payload = vec![0u8; n];
        self.inner.read_exact(&mut payload).await?;
        if let Some(mask) = rest.mask {
            apply_mask_at(&mut payload, mask, rest.offset);
        }
        rest.offset += n;
        rest.left -= n as u64;
        let fin = rest.left == 0 && rest.fin;
        if rest.left == 0 {
            self.rest = None;
        }
        Ok(Frame { fin, rsv1: false, opcode: op::CONTINUATION, payload })
    }

    /// The next frame; `Ok(None)` at a clean end of stream between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.rest.is_some() {
            return self.next_piece().await.map(Some);
        }
        let mut h = [0u8; MAX_HEADER];
        match self.inner.read(&mut h[..1]).await? {
            0 => return Ok(None),
            _ => self.inner.read_exact(&mut h[1..2]).await?,
        }
        let need = header_len(h[1]);
        self.inner.read_exact(&mut h[2..need]).await?;
        let head =
            Header::parse_with(&h[..need], self.expect_masked, self.max_frame, self.allow_rsv1)?.expect("whole header");
        if self.piece > 0 && head.opcode & 0x8 == 0 && head.len > self.piece as u64 {
            self.rest = Some(Rest { fin: head.fin, mask: head.mask, offset: 0, left: head.len });
            let first = self.next_piece().await?;
            return Ok(Some(Frame { fin: false, rsv1: head.rsv1, opcode: head.opcode, ..first }));
        }
        let mut payload = vec![0u8; head.len as usize];
        self.inner.read_exact(&mut payload).await?;
        if let Some(mask) = head.mask {
            apply_mask(&mut payload, mask);
        }
        if head.opcode == op::CLOSE {
            check_close(&payload)?;
        }
        Ok(Some(Frame { fin: head.fin, rsv1: head.rsv1, opcode: head.opcode, payload }))
    }
}

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER: usize = 14;

/// The length of a header, from its second byte.
pub fn header_len(b1: u8) -> usize {
    2 + match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    } + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// A frame header, checked against RFC 6455's rules.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate), when the caller allows it.
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Bytes the header takes.
    pub size: usize,
}

impl Header {
    /// Parses the header at the start of `buf`: `Ok(None)` if `buf` holds only part of it.
    /// Frames must be masked when `expect_masked` (we are the server) and must not be
    /// otherwise; no frame may exceed `max_frame` bytes.
    pub fn parse(buf: &[u8], expect_masked: bool, max_frame: usize) -> Result<Option<Header>, FrameError> {
        Header::parse_with(buf, expect_masked, max_frame, false)
    }

    /// Like [`parse`](Self::parse); `allow_rsv1` when permessage-deflate was negotiated
    /// (whether RSV1 is in its place, a message's first data frame, is the caller's to check).
    pub fn parse_with(
        buf: &[u8],
        expect_masked: bool,
        max_frame: usize,
        allow_rsv1: bool,
    ) -> Result<Option<Header>, FrameError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let size = header_len(buf[1]);
        if buf.len() < size {
            return Ok(None);
        }
        let fin = buf[0] & 0x80 != 0;
        let rsv1 = buf[0] & 0x40 != 0;
        if buf[0] & 0x30 != 0 || (rsv1 && !allow_rsv1) {
            return Err(FrameError::Protocol("reserved bits set"));
        }
        let opcode = buf[0] & 0x0f;
        if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
            return Err(FrameError::Protocol("unknown opcode"));
        }
        let masked = buf[1] & 0x80 != 0;
        if masked != expect_masked {
            return Err(FrameError::Protocol(if masked {
                "masked frame from server"
            } else {
                "unmasked frame from client"
            }));
        }
        let (len, at) = match buf[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 => (u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")), 10),
            n => (u64::from(n), 2),
        };
        if opcode & 0x8 != 0 && (len > 125 || !fin) {
            return Err(FrameError::Protocol("bad control frame"));
        }
        if len > max_frame as u64 {
            return Err(FrameError::TooBig(len, max_frame));
        }
        let mask = masked.then(|| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        Ok(Some(Header { fin, rsv1, opcode, mask, len, size }))
    }
}

/// XORs `data` with the 4-byte `mask`.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// XORs `data`, which starts `offset` bytes into a frame's payload, with the frame's mask.
pub fn apply_mask_at(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    apply_mask(data, [mask[r], mask[(r + 1) % 4], mask[(r + 2) % 4], mask[(r + 3) % 4]]);
}

/// Appends a frame header: `b0` is FIN, RSV and the opcode; then the shortest length
/// encoding (RFC 6455 §5.2) and the mask key, if any.
pub fn push_header(out: &mut Vec<u8>, b0: u8, len: usize, mask: Option<[u8; 4]>) {
    out.push(b0);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// Encodes one frame; `mask` is `Some` when we are the client.
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    push_header(&mut out, if fin { 0x80 } else { 0 } | opcode, payload.len(), mask);
    match mask {
        Some(k) => {
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], k);
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A fresh random masking key (RFC 6455 asks for unpredictable ones).
pub fn random_mask() -> [u8; 4] {
    (crate::random_u64() as u32).to_ne_bytes()
}

/// A close frame's payload: code and reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    p
}

/// Checks a received close frame's payload (RFC 6455 §5.5.1, §7.4) and parses it: empty
/// (1005), or a code that may be sent on the wire (not 1004–1006, 1015, 1016–2999, nor
/// outside 1000–4999) and a UTF-8 reason.
pub fn check_close(payload: &[u8]) -> Result<(u16, String), FrameError> {
    match payload {
        [] => Ok((1005, String::new())),
        [_] => Err(FrameError::Protocol("close frame with a 1-byte body")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !crate::ws::CloseCode::from(code).is_allowed() {
                return Err(FrameError::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadUtf8)?;
            Ok((code, reason.to_string()))
        }
    }
}

/// Parses a close frame's payload, checked or not (see [`check_close`]).
pub fn parse_close(payload: &[u8]) -> (u16, String) {
    if payload.len() < 2 {
        return (1005, String::new());
    }
    (u16::from_be_bytes([payload[0], payload[1]]), String::from_utf8_lossy(&payload[2..]).into_owned())
}

/// Runs the client side of the opening handshake (RFC 6455 §4.1) by hand. Returns the
/// response headers and the bytes read past the response (the server's first frames);
/// `bytewise` reads the response one byte at a time so that there are none, for relays that
/// hand the socket on as it is.
pub async fn client_handshake(
    stream: &mut Stream,
    url: &Url,
    extra: &[(String, String)],
    bytewise: bool,
) -> Result<(Vec<(String, String)>, Vec<u8>), crate::ws::ConnectError> {
    use crate::ws::ConnectError;
    let host_header = crate::url::host_header(url);
    let key = async_tungstenite::tungstenite::handshake::client::generate_key();
    let path = crate::url::request_target(url);
    // The caller's Host and User-Agent replace ours; the upgrade's own fields are ours alone.
    let given = |name: &str| extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !given("Host") {
        req.push_str(&format!("Host: {host_header}\r\n"));
    }
    req.push_str(&format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    if !given("User-Agent") {
        req.push_str(&format!("User-Agent: {}\r\n", crate::ws::USER_AGENT));
    }
    const OURS: [&str; 4] = ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"];
    for (k, v) in extra.iter().filter(|(k, _)| !OURS.iter().any(|o| k.eq_ignore_ascii_case(o))) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let io = |e: io::Error| ConnectError::Handshake(e.to_string());
    stream.write_all(req.as_bytes()).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let read = if bytewise {
        crate::net::read_head_bytewise(stream).await.map(|h| (h, Vec::new()))
    } else {
        crate::net::read_head(stream).await
    };
    let (head, tail) = read.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ConnectError::Handshake("connection closed during the handshake".into()),
        io::ErrorKind::InvalidData => ConnectError::Handshake("response head over 16 KiB".into()),
        _ => io(e),
    })?;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 101 {
        return Err(ConnectError::Http { status });
    }
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let accept = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Accept")).map(|(_, v)| v.as_str());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(ConnectError::Handshake("wrong Sec-WebSocket-Accept in the response".into()));
    }
    use crate::headers::has_token;
    if !has_token(&headers, "Upgrade", "websocket") || !has_token(&headers, "Connection", "upgrade") {
        return Err(ConnectError::Handshake("the 101 response is not a WebSocket upgrade".into()));
    }
    let offered = |p: &str| {
        extra
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
            .any(|(_, v)| v.split(',').any(|o| o.trim() == p))
    };
    if let Some((_, p)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
        && !offered(p.trim())
    {
        return Err(ConnectError::Handshake(format!("the server chose the subprotocol {p:?}, which was not offered")));
    }
    Ok((headers, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_are_checked_like_rfc_6455() {
        assert_eq!(check_close(&[]).unwrap(), (1005, String::new()));
        assert_eq!(check_close(&close_payload(1000, "bye")).unwrap(), (1000, "bye".into()));
        for ok in [1001, 1003, 1007, 1011, 3000, 4999] {
            assert!(check_close(&close_payload(ok, "")).is_ok(), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(check_close(&close_payload(bad, "")).unwrap_err().close_code(), 1002, "{bad}");
        }
        assert_eq!(check_close(&[3]).unwrap_err().close_code(), 1002);
        assert_eq!(check_close(&[3, 232, 0xff]).unwrap_err().close_code(), 1007, "bad UTF-8 reason");
    }

    #[test]
    fn utf8_is_checked_across_fragments() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut c = Utf8Check::default();
        assert!(c.push(&euro[..1], false).is_ok());
        assert!(c.push(&euro[1..2], false).is_ok());
        assert!(c.push(&euro[2..], true).is_ok());
        let mut c = Utf8Check::default();
        assert!(c.push(&euro[..2], false).is_ok());
        assert!(c.push(b"", true).is_err(), "a message may not end mid-character");
        assert!(Utf8Check::default().push(&[0xff], false).is_err(), "invalid bytes fail at once");
        assert!(Utf8Check::default().push(&[0xed, 0xa0, 0x80], true).is_err(), "no surrogates");
    }

    #[test]
    fn encode_then_read_round_trips_masked_and_unmasked() {
        for (len, mask) in [(0usize, None), (125, Some([1, 2, 3, 4])), (126, None), (70_000, Some([9, 8, 7, 6]))] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = encode(false, op::BINARY, &payload, mask);
            let mut r = FrameReader::new(BufReader::new(&bytes[..]), 1 << 20, mask.is_some());
            let f = smol::block_on(r.next()).unwrap().unwrap();
            assert_eq!(f, Frame { fin: false, rsv1: false, opcode: op::BINARY, payload });
            assert!(smol::block_on(r.next()).unwrap().is_none());
        }
    }

    #[test]
    fn long_frames_come_in_pieces_shaped_like_fragments() {
        let payload: Vec<u8> = (0..10_007u32).map(|i| (i * 7) as u8).collect();
        for mask in [None, Some([0x11, 0x22, 0x33, 0x44])] {
            let mut bytes = encode(true, op::BINARY, &payload, mask);
            bytes.extend(encode(true, op::PING, b"still whole", mask));
            bytes.extend(encode(false, op::TEXT, b"short", mask));
            bytes.extend(encode(true, op::CONTINUATION, &payload[..2500], mask));
            let mut r = FrameReader::new(BufReader::new(&bytes[..]), 1 << 20, mask.is_some()).in_pieces(1000);
            let mut frames = Vec::new();
            while let Some(f) = smol::block_on(r.next()).unwrap() {
                frames.push(f);
            }
            let shape: Vec<_> = frames.iter().map(|f| (f.opcode, f.fin, f.payload.len())).collect();
            let mut want = vec![(op::BINARY, false, 1000)];
            want.extend((0..9).map(|_| (op::CONTINUATION, false, 1000)));
            want.push((op::CONTINUATION, true, 7));
            want.extend([(op::PING, true, 11), (op::TEXT, false, 5)]);
            want.extend([
                (op::CONTINUATION, false, 1000),
                (op::CONTINUATION, false, 1000),
                (op::CONTINUATION, true, 500),
            ]);
            assert_eq!(shape, want, "mask {mask:?}");
            let joined: Vec<u8> = frames[..11].iter().flat_map(|f| f.payload.clone()).collect();
            assert!(joined == payload, "the pieces, unmasked, are the frame's payload (mask {mask:?})");
            assert_eq!(frames[11].payload, b"still whole");
        }
    }

    #[test]
    fn rejects_what_rfc_6455_forbids() {
        let check = |bytes: Vec<u8>, masked: bool| {
            let mut r = FrameReader::new(BufReader::new(&bytes[..]), 100, masked);
            smol::block_on(r.next()).unwrap_err()
        };
        assert!(matches!(check(encode(true, op::BINARY, b"x", None), true), FrameError::Protocol(_)));
        assert!(matches!(check(vec![0xC2, 0x00], false), FrameError::Protocol(_)));
        assert!(matches!(check(encode(true, op::BINARY, &[0; 101], None), false), FrameError::TooBig(101, 100)));
        assert!(matches!(check(encode(false, op::PING, b"", None), false), FrameError::Protocol(_)));
    }

    #[test]
    fn mask_is_its_own_inverse() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let mut d: Vec<u8> = (0..11).collect();
        apply_mask(&mut d, mask);
        // RFC 6455 §5.3: byte i is XORed with mask[i % 4] (the word path and the tail).
        let expected: Vec<u8> = (0..11u8).map(|i| i ^ mask[i as usize % 4]).collect();
        assert_eq!(d, expected);
        apply_mask(&mut d, mask);
        assert_eq!(d, (0..11).collect::<Vec<u8>>());
    }
}
