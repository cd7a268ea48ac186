//! The "PDU" wire format of IXWebSocket 11.4.6's `chat`, `send`, `receive` and `transfer`.
//!
//! A PDU is a map from names to byte strings, sent as **one binary WebSocket message**. Each
//! field is a line `<name> <lowercase hex of value>\n`, fields in ascending byte order of the
//! name, no header and no length prefix. Decoding splits on `\n`, skips empty lines, splits
//! each line at the first space, accepts either hex case, and lets a later duplicate win; a
//! missing field reads as empty. This format is what the reference speaks: do not change it.
//!
//! | PDU | fields (wire order) |
//! |---|---|
//! | chat | `text`, `user` |
//! | file | `content`, `djb2_hash`, `filename`, `id`, `kind`=`send` |
//! | ack | `ack`=`true`, `filename`, `id` |
//! | error | `id` (empty), `kind`=`error`, `message` |

use std::collections::BTreeMap;

/// A decoded PDU: names to raw values.
pub type Pdu = BTreeMap<String, Vec<u8>>;

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("line {0} has no space between name and value")]
    NoSpace(usize),
    #[error("line {0}: odd number of hex digits")]
    OddHex(usize),
    #[error("line {0}: '{1}' is not a hex digit")]
    BadHex(usize, char),
    #[error("line {0}: field name is not UTF-8")]
    BadName(usize),
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex of `bytes` to `out`.
pub fn hex_encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    for (pair, &b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 15) as usize];
    }
}

/// Hex digit values by byte; 0xff for bytes that are not hex digits.
const HEX_VALUES: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (either case) into `out`; `line` is for error messages.
pub fn hex_decode_into(hex: &[u8], out: &mut Vec<u8>, line: usize) -> Result<(), PduError> {
    if hex.len() % 2 != 0 {
        return Err(PduError::OddHex(line));
    }
    out.reserve(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let hi = hex_val(pair[0]).ok_or(PduError::BadHex(line, pair[0] as char))?;
        let lo = hex_val(pair[1]).ok_or(PduError::BadHex(line, pair[1] as char))?;
        out.push(hi << 4 | lo);
    }
    Ok(())
}

/// Encodes `fields` in the reference's order (names sorted by byte value).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut fields: Vec<(&str, &[u8])> = fields.into_iter().collect();
    fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        hex_encode_into(value, &mut out);
        out.push(b'\n');
    }
    out
}

/// Decodes a whole PDU.
pub fn decode(bytes: &[u8]) -> Result<Pdu, PduError> {
    let mut pdu = Pdu::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let sp = line.iter().position(|&b| b == b' ').ok_or(PduError::NoSpace(i + 1))?;
        let name = std::str::from_utf8(&line[..sp]).map_err(|_| PduError::BadName(i + 1))?;
        let mut value = Vec::new();
        hex_decode_into(&line[sp + 1..], &mut value, i + 1)?;
        pdu.insert(name.to_string(), value);
    }
    Ok(pdu)
}

/// A field as text (lossy), empty when missing, as the reference reads missing fields.
pub fn field(pdu: &Pdu, name: &str) -> String {
    pdu.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// The chat PDU `{text, user}`.
pub fn chat(user: &str, text: &str) -> Vec<u8> {
    encode([("text", text.as_bytes()), ("user", user.as_bytes())])
}

/// The 64-bit djb2 hash the file PDU carries (as decimal text): start at 5381, then
/// `h = h * 33 + byte` for each unsigned byte, wrapping.
#[derive(Debug, Clone, Copy)]
pub struct Djb2(pub u64);

impl Default for Djb2 {
    fn default() -> Self {
        Djb2(5381)
    }
}

impl Djb2 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.update_with(bytes, u64::from);
    }

    /// The variant of the reference's `gzip` and `gunzip` (C++ `char` is signed there):
    /// bytes ≥ 0x80 are added sign-extended.
    pub fn update_signed(&mut self, bytes: &[u8]) {
        self.update_with(bytes, |b| b as i8 as i64 as u64);
    }

    #[inline(always)]
    fn update_with(&mut self, bytes: &[u8], value: impl Fn(u8) -> u64) {
        // h' = h·33⁸ + b0·33⁷ + … + b7·33⁰ (mod 2⁶⁴): the same value as eight steps of the
        // recurrence, with one multiply on the serial chain per 8 bytes instead of eight.
        const P: [u64; 9] = {
            let mut p = [1u64; 9];
            let mut i = 1;
            while i < 9 {
                p[i] = p[i - 1].wrapping_mul(33);
                i += 1;
            }
            p
        };
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut t = 0u64;
            for (i, &b) in c.iter().enumerate() {
                t = t.wrapping_add(value(b).wrapping_mul(P[7 - i]));
            }
            h = h.wrapping_mul(P[8]).wrapping_add(t);
        }
        for &b in chunks.remainder() {
            h = h.wrapping_mul(33).wrapping_add(value(b));
        }
        self.0 = h;
    }
}

/// Decodes a PDU as it arrives, in pieces of any size: the value of one chosen field (the
/// file's `content`) is hex-decoded straight into a sink, so a PDU of any size needs
/// constant memory; every other field is kept, up to `max_small` bytes each.
#[derive(Debug)]
pub struct StreamDecoder {
    streamed: &'static str,
    max_small: usize,
    line: usize,
    name: Vec<u8>,
    in_value: bool,
    to_sink: bool,
    nibble: Option<u8>,
    value: Vec<u8>,
    fields: Pdu,
    /// Bytes of the streamed field written so far.
    pub streamed_len: u64,
    saw_streamed: bool,
}

impl StreamDecoder {
    pub fn new(streamed: &'static str, max_small: usize) -> Self {
        StreamDecoder {
            streamed,
            max_small,
            line: 1,
            name: Vec::new(),
            in_value: false,
            to_sink: false,
            nibble: None,
            value: Vec::new(),
            fields: Pdu::new(),
            streamed_len: 0,
            saw_streamed: false,
        }
    }

    /// Feeds the next piece; decoded bytes of the streamed field go to `sink`.
    pub fn feed(
        &mut self,
        data: &[u8],
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), StreamError> {
        let mut out = Vec::with_capacity(data.len() / 2 + 1);
        let mut i = 0;
        while i < data.len() {
            if self.in_value && self.to_sink {
                // Fast path: the streamed field is nearly all of the PDU; decode its hex up
                // to the end of the line (or of this piece) in one tight loop.
                let end = data[i..].iter().position(|&b| b == b'\n').map_or(data.len(), |p| i + p);
                self.decode_run(&data[i..end], &mut out)?;
                i = end;
                if i == data.len() {
                    break;
                }
            }
            let c = data[i];
            i += 1;
            if !self.in_value {
                match c {
                    b'\n' if self.name.is_empty() => self.line += 1,
                    b'\n' => return Err(PduError::NoSpace(self.line).into()),
                    b' ' => {
                        self.in_value = true;
                        self.to_sink = self.name == self.streamed.as_bytes();
                        self.saw_streamed |= self.to_sink;
                    }
                    _ if self.name.len() >= 64 => return Err(StreamError::TooLong(self.line)),
                    _ => self.name.push(c),
                }
                continue;
            }
            if c == b'\n' {
                if self.nibble.is_some() {
                    return Err(PduError::OddHex(self.line).into());
                }
                self.flush_out(&mut out, sink)?;
                let name =
                    String::from_utf8(std::mem::take(&mut self.name)).map_err(|_| PduError::BadName(self.line))?;
                if !self.to_sink {
                    self.fields.insert(name, std::mem::take(&mut self.value));
                }
                self.in_value = false;
                self.to_sink = false;
                self.line += 1;
                continue;
            }
            let v = hex_val(c).ok_or(PduError::BadHex(self.line, c as char))?;
            match self.nibble.take() {
                None => self.nibble = Some(v),
                Some(hi) => {
                    let byte = hi << 4 | v;
                    if self.to_sink {
                        out.push(byte);
                    } else if self.value.len() >= self.max_small {
                        return Err(StreamError::TooLong(self.line));
                    } else {
                        self.value.push(byte);
                    }
                }
            }
        }
        self.flush_out(&mut out, sink)
    }

    /// Hex-decodes a run of the streamed field (no newline in it) into `out`.
    fn decode_run(&mut self, mut hex: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let bad = |c: u8, line| StreamError::from(PduError::BadHex(line, c as char));
        if let Some(hi) = self.nibble.take() {
            let Some(&c) = hex.first() else {
                self.nibble = Some(hi);
                return Ok(());
            };
            let lo = HEX_VALUES[c as usize];
            if lo > 15 {
                return Err(bad(c, self.line));
            }
            out.push(hi << 4 | lo);
            hex = &hex[1..];
        }
        let pairs = hex.chunks_exact(2);
        let rest = pairs.remainder();
        out.reserve(hex.len() / 2);
        for p in pairs {
            let (hi, lo) = (HEX_VALUES[p[0] as usize], HEX_VALUES[p[1] as usize]);
            if (hi | lo) > 15 {
                let c = if hi > 15 { p[0] } else { p[1] };
                return Err(bad(c, self.line));
            }
            out.push(hi << 4 | lo);
        }
        if let Some(&c) = rest.first() {
            let v = HEX_VALUES[c as usize];
            if v > 15 {
                return Err(bad(c, self.line));
            }
            self.nibble = Some(v);
        }
        Ok(())
    }

    fn flush_out(
        &mut self,
        out: &mut Vec<u8>,
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), StreamError> {
        if !out.is_empty() {
            sink(out).map_err(StreamError::Sink)?;
            self.streamed_len += out.len() as u64;
            out.clear();
        }
        Ok(())
    }

    /// Ends the PDU: returns the small fields and whether the streamed field was present.
    pub fn finish(self) -> Result<(Pdu, bool), StreamError> {
        if self.in_value || !self.name.is_empty() {
            return Err(StreamError::Truncated);
        }
        Ok((self.fields, self.saw_streamed))
    }
}

/// Why a streamed PDU failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Pdu(#[from] PduError),
    #[error("line {0}: field too long")]
    TooLong(usize),
    #[error("the message ends in the middle of a field")]
    Truncated,
    #[error("cannot write the content: {0}")]
    Sink(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_djb2_sign_extends_high_bytes() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut slow: u64 = 5381;
        for &b in &data {
            slow = slow.wrapping_mul(33).wrapping_add(b as i8 as i64 as u64);
        }
        for split in [0, 5, 8, 299, 300] {
            let mut fast = Djb2::default();
            fast.update_signed(&data[..split]);
            fast.update_signed(&data[split..]);
            assert_eq!(fast.0, slow, "split {split}");
        }
        let mut h = Djb2::default();
        h.update_signed(&[0xff]);
        assert_eq!(h.0, (5381u64 * 33).wrapping_sub(1));
    }

    #[test]
    fn djb2_matches_the_reference_definition() {
        let mut h = Djb2::default();
        h.update(b"");
        assert_eq!(h.0, 5381);
        h.update(b"a");
        assert_eq!(h.0, 5381 * 33 + 97);
        // The unrolled update equals the plain recurrence for every length and split.
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut slow: u64 = 5381;
        for &b in &data {
            slow = slow.wrapping_mul(33).wrapping_add(u64::from(b));
        }
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut fast = Djb2::default();
            fast.update(&data[..split]);
            fast.update(&data[split..]);
            assert_eq!(fast.0, slow, "split at {split}");
        }
    }

    #[test]
    fn stream_decoder_matches_decode_whatever_the_piece_size() {
        let content: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let pdu = encode([("content", &content[..]), ("id", b"abc"), ("kind", b"send")]);
        for piece in [1, 2, 3, 7, 64, 4096] {
            let mut d = StreamDecoder::new("content", 1024);
            let mut got = Vec::new();
            for chunk in pdu.chunks(piece) {
                d.feed(chunk, &mut |b| {
                    got.extend_from_slice(b);
                    Ok(())
                })
                .unwrap();
            }
            let (fields, saw) = d.finish().unwrap();
            assert!(saw);
            assert_eq!(got, content);
            assert_eq!(field(&fields, "kind"), "send");
            assert_eq!(field(&fields, "id"), "abc");
            assert!(!fields.contains_key("content"));
        }
    }

    #[test]
    fn stream_decoder_rejects_truncated_and_oversized_fields() {
        let mut d = StreamDecoder::new("content", 4);
        d.feed(b"content 41", &mut |_| Ok(())).unwrap();
        assert!(matches!(d.finish(), Err(StreamError::Truncated)));
        let mut d = StreamDecoder::new("content", 4);
        assert!(matches!(d.feed(b"id 4142434445\n", &mut |_| Ok(())), Err(StreamError::TooLong(1))));
    }

    #[test]
    fn chat_pdu_has_the_reference_bytes() {
        assert_eq!(chat("bob", "hi there"), b"text 6869207468657265\nuser 626f62\n");
        assert_eq!(chat("bob", "hi there").len(), 34);
    }

    #[test]
    fn fields_are_sorted_by_name_whatever_the_input_order() {
        let got = encode([("kind", &b"error"[..]), ("id", b""), ("message", b"Hash mismatch.")]);
        assert_eq!(got, b"id \nkind 6572726f72\nmessage 48617368206d69736d617463682e\n");
    }

    #[test]
    fn decode_round_trips_and_accepts_upper_case_and_empty_lines() {
        let pdu = decode(b"\ntext 6869\n\nuser 626F62\n").unwrap();
        assert_eq!(field(&pdu, "text"), "hi");
        assert_eq!(field(&pdu, "user"), "bob");
        assert_eq!(field(&pdu, "missing"), "");
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode([("content", &bytes[..])])).unwrap()["content"], bytes);
    }

    #[test]
    fn a_later_duplicate_wins() {
        assert_eq!(field(&decode(b"a 31\na 32\n").unwrap(), "a"), "2");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(decode(b"nospace\n"), Err(PduError::NoSpace(1)));
        assert_eq!(decode(b"a 123\n"), Err(PduError::OddHex(1)));
        assert_eq!(decode(b"a zz\n"), Err(PduError::BadHex(1, 'z')));
        assert_eq!(decode(b"\xff 00\n"), Err(PduError::BadName(1)));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        // A small deterministic fuzz: 20,000 random inputs from an LCG, biased towards
        // the bytes the format uses.
        let alphabet = b"0123456789abcdefABCDEF \n\xff\x00xyz";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (state >> 58) as usize;
            let input: Vec<u8> = (0..len)
                .map(|i| {
                    let r = state.rotate_left(i as u32 * 7);
                    if r & 1 == 0 { alphabet[(r >> 8) as usize % alphabet.len()] } else { (r >> 16) as u8 }
                })
                .collect();
            let _ = decode(&input);
        }
    }
}
