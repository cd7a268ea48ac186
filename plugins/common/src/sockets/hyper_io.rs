//! hyper's I/O traits over this crate's streams, for `httpd` and `curl`.
//!
//! Why not smol-hyper's `FuturesIo`: futures' `AsyncRead` reads into initialized bytes, so
//! before every read it fills all of hyper's spare buffer with zeros (8 KiB and up, to
//! ~400 KiB as hyper's adaptive buffer grows) — also before a read that finds nothing. For a
//! small keep-alive request that zeroing cost more than parsing it. Here a read lands in a
//! buffer of the thread's, zeroed once, and only the bytes read are copied into hyper's.
//! Writes pass straight through (not vectored, as before: hyper flattens small responses
//! into one write).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// The most one read takes.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A stream as hyper's `Read` and `Write`.
#[derive(Debug)]
pub struct HyperIo<T>(pub T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(SCRATCH);
        let mut read = |scratch: &mut Vec<u8>| {
            if scratch.len() < want {
                scratch.resize(SCRATCH, 0);
            }
            Pin::new(&mut self.0).poll_read(cx, &mut scratch[..want]).map_ok(|n| buf.put_slice(&scratch[..n]))
        };
        SCRATCH_BUF.with(|s| match s.try_borrow_mut() {
            Ok(mut scratch) => read(&mut scratch),
            // A read inside a read (a stream over a stream of this thread's): a buffer of its own.
            Err(_) => read(&mut Vec::new()),
        })
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper reads a request through it and answers through it, over a real socket pair.
    #[test]
    fn hyper_serves_a_request_through_it() {
        crate::runtime::block_on(|ex| async move {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let (a, b) = (crate::net::UnixStream::from_std(a).unwrap(), crate::net::UnixStream::from_std(b).unwrap());
            let service = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = format!("you asked for {}", req.uri().path());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                    body,
                ))))
            });
            ex.spawn(hyper::server::conn::http1::Builder::new().serve_connection(HyperIo(a), service)).detach();
            let mut b = b;
            futures_lite::AsyncWriteExt::write_all(&mut b, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut got = String::new();
            futures_lite::AsyncReadExt::read_to_string(&mut b, &mut got).await.unwrap();
            assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
            assert!(got.ends_with("you asked for /x"), "{got}");
        });
    }
}
