//! `--compressed`: the body decoded as it arrives, through every coding that
//! `Content-Encoding` lists (`gzip, deflate`, `identity, gzip`, `gzip, gzip`), undone in
//! reverse order as RFC 9110 §8.4 says, in constant memory.
//!
//! Codings it cannot undo (`br`, `zstd`, …) are refused before the first byte is written,
//! with curl's exit 61, rather than printed still compressed.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use ws_plugin_api::Error;

use crate::args::{code, fail};

/// A chain of decoders, the last coding applied first.
pub(crate) struct Decoder {
    first: Box<dyn Stage>,
    out: Shared,
    fed: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("fed", &self.fed).finish_non_exhaustive()
    }
}

impl Decoder {
    /// The decoder for a `Content-Encoding` value (all its header lines joined with `,`):
    /// `None` when it names no coding but `identity`.
    pub(crate) fn for_codings(value: &str) -> Result<Option<Decoder>, Error> {
        let codings: Vec<String> = value
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        if codings.is_empty() {
            return Ok(None);
        }
        let out = Shared::default();
        let mut chain: Box<dyn Stage> = Box::new(out.clone());
        // The first coding applied is undone last: it sits next to the output.
        for c in &codings {
            chain = match c.as_str() {
                "gzip" | "x-gzip" => Box::new(flate2::write::MultiGzDecoder::new(chain)),
                "deflate" => Box::new(flate2::write::ZlibDecoder::new(chain)),
                other => {
                    return Err(fail(
                        code::BAD_ENCODING,
                        format!("Unrecognized content encoding type '{other}': ws curl decodes gzip and deflate"),
                    ));
                }
            };
        }
        Ok(Some(Decoder { first: chain, out, fed: false }))
    }

    /// Feeds received bytes; returns what they decoded to so far.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.fed |= !data.is_empty();
        self.first.write_all(data).map_err(bad_content)?;
        Ok(self.out.take())
    }

    /// Ends the input: the rest of the output, or an error when the stream was cut short.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Error> {
        if !self.fed {
            return Ok(Vec::new());
        }
        self.first.end().map_err(bad_content)?;
        Ok(self.out.take())
    }
}

fn bad_content(e: std::io::Error) -> Error {
    fail(code::BAD_ENCODING, format!("Error while processing content unencoding: {e}"))
}

/// One decoder of the chain, or its end.
trait Stage: Write {
    /// Finishes this stage and the ones after it.
    fn end(self: Box<Self>) -> std::io::Result<()>;
}

/// The end of the chain: decoded bytes wait here until [`Decoder::push`] takes them.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Stage for Shared {
    fn end(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

impl Stage for flate2::write::MultiGzDecoder<Box<dyn Stage>> {
    fn end(self: Box<Self>) -> std::io::Result<()> {
        (*self).finish()?.end()
    }
}

impl Stage for flate2::write::ZlibDecoder<Box<dyn Stage>> {
    fn end(self: Box<Self>) -> std::io::Result<()> {
        (*self).finish()?.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `wire` fed in 7-byte pieces.
    fn decode(codings: &str, wire: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(mut d) = Decoder::for_codings(codings)? else { return Ok(wire.to_vec()) };
        let mut out = Vec::new();
        for piece in wire.chunks(7) {
            out.extend(d.push(piece)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn lists_of_codings_are_undone_in_reverse_order() {
        let text = b"hello, hello, hello, compressed world\n".repeat(50);
        assert_eq!(decode("gzip", &gzip(&text)).unwrap(), text);
        assert_eq!(decode("identity, gzip", &gzip(&text)).unwrap(), text);
        assert_eq!(decode("gzip, gzip", &gzip(&gzip(&text))).unwrap(), text);
        assert_eq!(decode("deflate, gzip", &gzip(&zlib(&text))).unwrap(), text);
        assert_eq!(decode("GZIP ,deflate", &zlib(&gzip(&text))).unwrap(), text);
        assert!(Decoder::for_codings("identity").unwrap().is_none());
        assert_eq!(decode("gzip", b"").unwrap(), b"", "an empty body (HEAD, 304) decodes to nothing");
    }

    #[test]
    fn unknown_codings_and_broken_streams_are_exit_61() {
        assert_eq!(Decoder::for_codings("gzip, br").unwrap_err().exit_code(), 61);
        assert_eq!(decode("gzip", b"this is not gzip at all").unwrap_err().exit_code(), 61);
        let wire = gzip(&b"x".repeat(10_000));
        assert_eq!(decode("gzip", &wire[..wire.len() / 2]).unwrap_err().exit_code(), 61, "cut short");
    }
}
