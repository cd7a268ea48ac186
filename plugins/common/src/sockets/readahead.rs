//! Read-ahead that costs an idle connection nothing.
//!
//! tungstenite allocates its read buffer when a connection opens, keeps it for the
//! connection's life, and never reads more than that buffer's size in one call. A big buffer
//! (16 KiB was ours) made each of 10,000 idle WebSocket connections cost 20 KiB of server
//! memory; a small one alone would make a 16 MiB message take one `read` per small piece.
//!
//! So tungstenite gets a small buffer ([`crate::ws::config`]) and reads through a
//! [`ReadAhead`]: the socket is read [`CHUNK`] bytes at a time into a buffer borrowed from
//! the thread's spares, the caller gets what fits, and the rest stays with the connection —
//! in the borrowed buffer when it is most of it, else copied into an allocation of its exact
//! size — until the caller takes it, when the buffer goes back to the spares. An idle
//! connection holds no buffer; a read that finds nothing (`Pending`, the normal end of
//! every burst) borrows and returns one without allocating. Each event-loop thread keeps at
//! most [`SPARES`] spare buffers.
//!
//! ```
//! use futures_lite::{AsyncReadExt, future};
//! use ws_common::sockets::readahead::ReadAhead;
//!
//! future::block_on(async {
//!     let mut r = ReadAhead::new(&b"hello, world"[..]);
//!     let mut five = [0u8; 5];
//!     r.read_exact(&mut five).await.unwrap();
//!     assert_eq!(&five, b"hello");
//!     assert_eq!(r.waiting(), 7); // the rest waits, copied into a small allocation
//!     let mut rest = Vec::new();
//!     r.read_to_end(&mut rest).await.unwrap();
//!     assert_eq!(rest, b", world");
//!     assert_eq!(r.waiting(), 0);
//! });
//! ```

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

/// How much one read of the socket may bring.
pub const CHUNK: usize = 64 * 1024;
/// Spare buffers kept per thread.
pub const SPARES: usize = 4;
/// Leftovers this small are copied out so the big buffer goes back at once.
const SMALL: usize = 4 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A [`CHUNK`]-sized buffer (its length is its size: written before use), from the spares.
fn borrow() -> Vec<u8> {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| vec![0; CHUNK])
}

/// Gives a buffer back to the spares (or frees it when it is not a whole one, or when
/// there are enough).
fn give_back(buf: Vec<u8>) {
    if buf.len() != CHUNK {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARES {
            s.push(buf);
        }
    });
}

/// A reader that reads its inner reader ahead in big pieces while holding no buffer between
/// bursts (see the module docs).
#[derive(Debug)]
pub struct ReadAhead<R> {
    inner: R,
    /// Bytes read and not yet taken: `held[pos..end]`; empty (no allocation) when idle.
    held: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<R> ReadAhead<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, held: Vec::new(), pos: 0, end: 0 }
    }

    /// Bytes read from the inner reader that the caller has not taken yet.
    pub fn waiting(&self) -> usize {
        self.end - self.pos
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader and the bytes read ahead of the caller.
    pub fn into_parts(mut self) -> (R, Vec<u8>) {
        let rest = if self.pos == 0 && self.end == self.held.len() {
            std::mem::take(&mut self.held)
        } else {
            self.held[self.pos..self.end].to_vec()
        };
        (self.inner, rest)
    }

    /// Hands `out` what is held; frees the hold when it is all taken.
    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.held[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.end {
            give_back(std::mem::take(&mut self.held));
            self.pos = 0;
            self.end = 0;
        }
        n
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadAhead<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pos < this.end {
            return Poll::Ready(Ok(this.take(out)));
        }
        if out.len() >= CHUNK / 2 || out.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let mut buf = borrow();
        let read = Pin::new(&mut this.inner).poll_read(cx, &mut buf);
        let n = match read {
            Poll::Ready(Ok(n)) if n > 0 => n,
            other => {
                give_back(buf);
                return other;
            }
        };
        let given = n.min(out.len());
        out[..given].copy_from_slice(&buf[..given]);
        let rest = n - given;
        if rest == 0 {
            give_back(buf);
        } else if rest <= SMALL {
            this.held = buf[given..n].to_vec();
            (this.pos, this.end) = (0, rest);
            give_back(buf);
        } else {
            this.held = buf;
            (this.pos, this.end) = (given, n);
        }
        Poll::Ready(Ok(given))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, future};

    /// Serves its bytes in the pieces given, `Pending` once between pieces (waking itself).
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        pending: bool,
    }

    impl AsyncRead for Pieces {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
            if self.pending {
                self.pending = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending = true;
            let Some(p) = self.pieces.first_mut() else { return Poll::Ready(Ok(0)) };
            let n = out.len().min(p.len());
            out[..n].copy_from_slice(&p[..n]);
            p.drain(..n);
            if p.is_empty() {
                self.pieces.remove(0);
            }
            Poll::Ready(Ok(n))
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn small_reads_get_every_byte_in_order_and_hold_nothing_once_taken() {
        let pieces = vec![bytes(10, 1), bytes(CHUNK, 2), bytes(3 * CHUNK + 17, 3), bytes(5000, 4)];
        let all: Vec<u8> = pieces.concat();
        let mut r = ReadAhead::new(Pieces { pieces, pending: false });
        let mut got = Vec::new();
        future::block_on(async {
            let mut small = [0u8; 1000];
            loop {
                let n = r.read(&mut small).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&small[..n]);
                // Never more held than one read of the inner reader brought.
                assert!(r.waiting() < CHUNK);
            }
        });
        assert_eq!(got.len(), all.len());
        assert!(got == all, "bytes differ");
        assert_eq!(r.waiting(), 0);
        assert_eq!(r.held.capacity(), 0, "an idle reader holds no buffer");
    }

    #[test]
    fn a_small_leftover_is_copied_out_and_a_big_one_keeps_the_buffer() {
        future::block_on(async {
            let small = bytes(1000, 5);
            let mut r = ReadAhead::new(&small[..]);
            let mut one = [0u8; 100];
            r.read_exact(&mut one).await.unwrap();
            assert_eq!(r.held.capacity(), 900, "copied into an allocation of its size");
            let big = bytes(CHUNK, 6);
            let mut r = ReadAhead::new(&big[..]);
            r.read_exact(&mut one).await.unwrap();
            assert_eq!(r.held.len(), CHUNK, "the borrowed buffer stays");
            assert_eq!(r.waiting(), CHUNK - 100);
            let (_, rest) = r.into_parts();
            assert_eq!(rest, big[100..]);
        });
    }

    #[test]
    fn big_reads_go_straight_through_and_pending_returns_the_buffer() {
        future::block_on(async {
            let mut r = ReadAhead::new(Pieces { pieces: vec![bytes(CHUNK, 7)], pending: true });
            let mut out = vec![0u8; CHUNK];
            let n = r.read(&mut out).await.unwrap();
            assert_eq!(n, CHUNK);
            assert_eq!(r.held.capacity(), 0);
            assert!(SPARE.with(|s| s.borrow().len()) <= SPARES);
        });
    }
}
