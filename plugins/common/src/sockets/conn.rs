//! TCP and Unix stream sockets and listeners on this thread's event loop
//! ([`crate::sockets::evloop`]), with smol's method names so that the layers above read the
//! same. A stream is a cheap handle (`Clone`): one clone may read while another writes.
//! The std socket is one `Deref` away for options and addresses (`set_nodelay`,
//! `peer_addr`, `shutdown`).

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::os::unix::net as unix;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use rustix::net::{SocketFlags, SocketType};

use crate::sockets::evloop::Async;

/// Implements the futures I/O traits on a handle whose field 0 is an `Rc<Async<$std>>`, and
/// its way off the loop.
macro_rules! stream_io {
    ($t:ident, $std:ty) => {
        impl AsyncRead for $t {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.0.poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.0.poll_write(cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_write_vectored(cx, bufs)
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.0.get_ref().shutdown(std::net::Shutdown::Write))
            }
        }

        impl $t {
            /// Makes the next read try the socket even without a new edge.
            pub fn assume_readable(&self) {
                self.0.assume_readable();
            }

            /// The std socket off the loop, if this is the only handle to it.
            pub fn into_std(self) -> Result<$std, $t> {
                Rc::try_unwrap(self.0).map(Async::into_inner).map_err($t)
            }

            /// Whether other handles (clones) to this connection exist.
            pub fn is_shared(&self) -> bool {
                Rc::strong_count(&self.0) > 1
            }
        }
    };
}

/// A TCP connection.
#[derive(Debug, Clone)]
pub struct TcpStream(Rc<Async<std::net::TcpStream>>);

stream_io!(TcpStream, std::net::TcpStream);

impl TcpStream {
    /// Connects to `addr` without blocking the loop.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let family = if addr.is_ipv4() { rustix::net::AddressFamily::INET } else { rustix::net::AddressFamily::INET6 };
        let fd =
            rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let io = Async::new_nonblocking(std::net::TcpStream::from(fd))?;
        // Connected once writable with no error pending.
        io.write_with(|s| {
            if let Some(e) = s.take_error()? {
                return Err(e);
            }
            match s.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTCONN.raw_os_error()) => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        Ok(TcpStream(Rc::new(io)))
    }

    /// Connects to the first address of `host` that answers (resolved off the loop).
    pub async fn connect_host(host: &str, port: u16) -> io::Result<TcpStream> {
        let mut last = None;
        for a in smol::net::resolve((host, port)).await? {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"))))
    }

    /// Takes a connected std socket onto this thread's loop.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Ok(TcpStream(Rc::new(Async::new_nonblocking(s)?)))
    }

    fn from_accepted(fd: OwnedFd) -> io::Result<TcpStream> {
        Ok(TcpStream(Rc::new(Async::new_nonblocking(std::net::TcpStream::from(fd))?)))
    }

    /// Reads without consuming, once something is there.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_with(|s| s.peek(buf)).await
    }

    /// Waits until reading would not block.
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.0.poll_readable(cx)).await
    }
}

impl Deref for TcpStream {
    type Target = std::net::TcpStream;
    fn deref(&self) -> &std::net::TcpStream {
        self.0.get_ref()
    }
}

/// A Unix domain stream connection.
#[derive(Debug, Clone)]
pub struct UnixStream(Rc<Async<unix::UnixStream>>);

stream_io!(UnixStream, unix::UnixStream);

impl UnixStream {
    /// Connects to the socket at `path` (a local connect: it does not wait on a network).
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        UnixStream::from_std(unix::UnixStream::connect(path)?)
    }

    pub fn from_std(s: unix::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Ok(UnixStream(Rc::new(Async::new_nonblocking(s)?)))
    }
}

impl Deref for UnixStream {
    type Target = unix::UnixStream;
    fn deref(&self) -> &unix::UnixStream {
        self.0.get_ref()
    }
}

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener(Async<std::net::TcpListener>);

impl TcpListener {
    pub fn bind(addr: impl std::net::ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::from_std(std::net::TcpListener::bind(addr)?)
    }

    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        Ok(TcpListener(Async::new_nonblocking(l)?))
    }

    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
        let (fd, addr) = self.0.read_with(|l| Ok(rustix::net::acceptfrom_with(l, flags)?)).await?;
        let addr =
            addr.and_then(|a| SocketAddr::try_from(a).ok()).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok((TcpStream::from_accepted(fd)?, addr))
    }
}

impl Deref for TcpListener {
    type Target = std::net::TcpListener;
    fn deref(&self) -> &std::net::TcpListener {
        self.0.get_ref()
    }
}

/// A listening Unix domain socket.
#[derive(Debug)]
pub struct UnixListener(Async<unix::UnixListener>);

impl UnixListener {
    pub fn from_std(l: unix::UnixListener) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        Ok(UnixListener(Async::new_nonblocking(l)?))
    }

    pub async fn accept(&self) -> io::Result<UnixStream> {
        let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
        let fd = self.0.read_with(|l| Ok(rustix::net::accept_with(l, flags)?)).await?;
        Ok(UnixStream(Rc::new(Async::new_nonblocking(unix::UnixStream::from(fd))?)))
    }
}

impl Deref for UnixListener {
    type Target = unix::UnixListener;
    fn deref(&self) -> &unix::UnixListener {
        self.0.get_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_connection_echoes_and_a_refused_one_says_so() {
        crate::runtime::block_on(|ex| async move {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let at = l.local_addr().unwrap();
            let server = ex.spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            });
            let mut c = TcpStream::connect(at).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut back = vec![0u8; 5];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, b"hello");
            server.await;
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let e = TcpStream::connect(closed).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        });
    }
}
