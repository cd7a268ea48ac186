//! Content codings: brotli, zstd and gzip, chosen from `Accept-Encoding` by its q-values
//! (RFC 9110 §12.5.3; on a tie the smaller output wins: br, then zstd, then gzip), made on
//! the fly for compressible files up to [`crate::responses::MAX_GZIP`] (on a blocking-task
//! thread, and, up to [`KEEP_UP_TO`] and within a budget, kept with the file version's
//! headers so that each version is compressed once per coding), or taken from a precompressed sibling (`app.js.br`,
//! `app.js.zst`, `app.js.gz`) that is at least as new as the file.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files up to this size keep their compressed bytes with their [`crate::cache::Head`], so a
/// file version is compressed once per coding, not per request.
pub(crate) const KEEP_UP_TO: u64 = 1 << 20;
/// All compressed bytes kept at once; past it, answers are compressed but not kept.
const KEEP_BUDGET: usize = 32 << 20;
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// How many compressions run at once (on blocking-task threads).
pub(crate) static COMPRESSORS: smol::lock::Semaphore = smol::lock::Semaphore::new(2);

/// Takes `n` bytes of the budget, if they fit.
pub(crate) fn reserve(n: usize) -> bool {
    KEPT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| (k + n <= KEEP_BUDGET).then_some(k + n)).is_ok()
}

/// Gives `n` bytes back (a [`crate::cache::Head`] that kept them is gone).
pub(crate) fn release(n: usize) {
    KEPT.fetch_sub(n, Ordering::Relaxed);
}

/// A content coding we make or serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// Ours, best first (on equal q-values).
    pub(crate) const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// A precompressed sibling's extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zst",
            Coding::Gzip => "gz",
        }
    }

    /// `data` compressed (brotli quality 5 and zstd level 3: about gzip -6's size or better,
    /// several times faster than brotli's maximum; a precompressed sibling is the way to
    /// the smallest files).
    ///
    /// Brotli's window is 512 KiB (lgwin 19, ngx_brotli's default), smaller for smaller
    /// files: its encoder's memory grows with the window — on a 4.5 MiB text file 31 MiB at
    /// lgwin 22, 7.5 MiB at 19, for an output 0.02 % bigger (measured with brotli 8.0.4).
    pub(crate) fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Coding::Br => {
                let mut out = Vec::with_capacity(data.len() / 3);
                {
                    let lgwin = (usize::BITS - data.len().saturating_sub(1).leading_zeros()).clamp(16, 19);
                    let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, lgwin);
                    w.write_all(data)?;
                }
                Ok(out)
            }
            Coding::Zstd => zstd::bulk::compress(data, 3),
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
        }
    }
}

/// The codings `accept` (an `Accept-Encoding` value) allows, most wanted first: q-values
/// decide, `*` stands for the codings not named, `q=0` refuses.
pub(crate) fn preferred(accept: Option<&str>) -> Vec<Coding> {
    let Some(accept) = accept else { return Vec::new() };
    let mut named: Vec<(&str, f32)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim();
        let q =
            parts.filter_map(|p| p.trim().strip_prefix("q=")).find_map(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        if !token.is_empty() {
            named.push((token, q));
        }
    }
    let q_of = |c: Coding| {
        named
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(c.token()))
            .or_else(|| named.iter().find(|(t, _)| *t == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut chosen: Vec<(Coding, f32)> = Coding::ALL.iter().map(|&c| (c, q_of(c))).filter(|(_, q)| *q > 0.0).collect();
    // A stable sort keeps our order among equals.
    chosen.sort_by(|a, b| b.1.total_cmp(&a.1));
    chosen.into_iter().map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide_and_ties_take_the_smallest() {
        use Coding::*;
        assert_eq!(preferred(Some("gzip, deflate, br, zstd")), [Br, Zstd, Gzip]);
        assert_eq!(preferred(Some("gzip;q=1.0, br;q=0.5")), [Gzip, Br]);
        assert_eq!(preferred(Some("br;q=0, *")), [Zstd, Gzip]);
        assert_eq!(preferred(Some("identity")), []);
        assert_eq!(preferred(Some("GZIP")), [Gzip]);
        assert_eq!(preferred(None), []);
    }

    #[test]
    fn each_coding_round_trips() {
        use std::io::Read;
        let text = b"hello, compressible world! ".repeat(1000);
        let br = Coding::Br.compress(&text).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
        assert_eq!(zstd::decode_all(&Coding::Zstd.compress(&text).unwrap()[..]).unwrap(), text);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&Coding::Gzip.compress(&text).unwrap()[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
        assert!(br.len() < text.len() / 20);
    }
}
