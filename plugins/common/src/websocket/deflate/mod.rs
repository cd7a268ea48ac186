//! permessage-deflate (RFC 7692) for every WebSocket subcommand.
//!
//! tungstenite, our message engine, has no extensions: it refuses any frame with RSV1 set.
//! Rather than fork it, compression lives one layer down, in [`DeflateIo`], a byte stream
//! between tungstenite and the socket that inflates what arrives and deflates what leaves
//! (see [`io`]); [`params`] negotiates it. A connection that did not negotiate deflate has
//! no such layer: its bytes take exactly the path they took before.
//!
//! Compression uses flate2 on zlib-rs, the Rust port of zlib: it has window sizes (which
//! miniz_oxide, flate2's default, lacks, and RFC 7692 §7.1.2 needs) and is as fast as C zlib.
//!
//! ```text
//! client ──Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits──▶ server
//!        ◀─Sec-WebSocket-Extensions: permessage-deflate─────────────────────────
//! tungstenite ⇄ DeflateIo (inflate / deflate, RSV1) ⇄ TLS or TCP
//! ```

pub mod inflate;
pub mod io;
pub mod params;

pub use io::DeflateIo;
pub use params::{Agreement, CLIENT_OFFER, ServerPolicy, accept_answer, deflate_offers, negotiate};

use flate2::{Compress, Compression, FlushCompress};

thread_local! {
    /// One compressor per window size, reset between messages: [`compress_message`] runs
    /// for every message a room relays, and a fresh compressor costs hundreds of KiB.
    static COMPRESSORS: std::cell::RefCell<Vec<(u8, Compress)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Compresses a whole message on its own, without context (§7.2.1): the payload of a frame
/// with RSV1 that every peer which agreed `send_no_context_takeover` with a window of at
/// least `window_bits` can inflate. `broadcast_server` compresses each message once this way
/// for all its receivers.
pub fn compress_message(payload: &[u8], window_bits: u8) -> Vec<u8> {
    let bits = window_bits.clamp(9, 15);
    COMPRESSORS.with_borrow_mut(|cache| {
        let at = match cache.iter().position(|(b, _)| *b == bits) {
            Some(i) => i,
            None => {
                cache.push((bits, Compress::new_with_window_bits(Compression::new(io::LEVEL), false, bits)));
                cache.len() - 1
            }
        };
        let z = &mut cache[at].1;
        z.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let mut taken = 0;
        loop {
            let before = z.total_in();
            // The stream is ours and never finished: compressing cannot fail.
            let _ = z.compress_vec(&payload[taken..], &mut out, FlushCompress::Sync);
            taken += (z.total_in() - before) as usize;
            if taken == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
        }
        out
    })
}

/// Whether content like `sample` is worth compressing: deflate saves at least a tenth of it.
/// Already-compressed files (media, archives) and random data are not, and are sent faster
/// as they are.
pub fn worth_compressing(sample: &[u8]) -> bool {
    compress_message(sample, 15).len() * 10 <= sample.len() * 9
}

#[cfg(test)]
mod tests {
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn text_is_worth_compressing_and_random_bytes_are_not() {
        let text = "{\"id\":1,\"name\":\"sensor\"}\n".repeat(2000);
        assert!(super::worth_compressing(text.as_bytes()));
        let mut x: u64 = 88172645463325252;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!super::worth_compressing(&random));
    }

    #[test]
    fn a_message_compressed_once_inflates_on_its_own() {
        let text = "permessage-deflate, once for many. ".repeat(500);
        for bits in [8, 9, 12, 15] {
            let body = super::compress_message(text.as_bytes(), bits);
            assert!(body.len() < text.len() / 4, "{} bytes", body.len());
            for _ in 0..2 {
                // A fresh inflater each time: no context from an earlier message is needed.
                let mut z = Decompress::new_with_window_bits(false, bits.max(9));
                let mut out = Vec::with_capacity(text.len() + 64);
                z.decompress_vec(&[&body[..], &[0, 0, 0xff, 0xff]].concat(), &mut out, FlushDecompress::Sync).unwrap();
                assert_eq!(out, text.as_bytes());
            }
        }
        let empty = super::compress_message(b"", 15);
        let mut z = Decompress::new(false);
        let mut out = Vec::with_capacity(16);
        z.decompress_vec(&[&empty[..], &[0, 0, 0xff, 0xff]].concat(), &mut out, FlushDecompress::Sync).unwrap();
        assert!(out.is_empty() && empty.len() <= 2, "{empty:?}");
    }
}
