//! Listening, the ready line, pidfiles, and one stream type for plain and TLS connections
//! over TCP or Unix domain sockets.
//!
//! Every server prints `Listening on HOST:PORT` as its *first* line, after the socket is
//! bound: with `--port 0` that line is the only way a script or test learns the port. With
//! `--unix PATH` it is `Listening on unix:PATH` (nginx's spelling), and such clients are
//! named `unix:` in the logs, as nginx names them.
//!
//! A Unix socket file left by a server that died is replaced; one a live server still
//! accepts on is not (the bind fails with "address in use", as for a TCP port).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

pub use crate::sockets::conn::{TcpListener, TcpStream, UnixListener, UnixStream};
use clap::Args;
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::CommonError;
use crate::log::{Level, write_forced};

/// The listening flags every server shares.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the ready line tells which)
    #[arg(long, default_value_t = 8008)]
    pub port: u16,
    /// Listen on IPv6 (::1 unless --host says otherwise)
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Write the process id to FILE once listening
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Listen on a Unix domain socket at PATH instead of TCP
    #[arg(long, value_name = "PATH", conflicts_with_all = ["host", "port", "ipv6"])]
    pub unix: Option<PathBuf>,
}

impl ListenArgs {
    /// The host to bind, taking `-6` into account.
    pub fn bind_host(&self) -> &str {
        if self.ipv6 && self.host == "127.0.0.1" { "::1" } else { &self.host }
    }

    /// Binds the listener, writes the pidfile, and prints the ready line.
    pub async fn listen(&self) -> Result<Listener, CommonError> {
        let (listener, shown) = match &self.unix {
            Some(path) => {
                let addr = format!("unix:{}", path.display());
                let listener = bind_unix(path).map_err(|source| CommonError::Listen { addr: addr.clone(), source })?;
                (Listener::Unix(listener), addr)
            }
            None => {
                let host = self.bind_host();
                let addr = format_host_port(host, self.port);
                let listener = TcpListener::bind((host, self.port))
                    .map_err(|source| CommonError::Listen { addr: addr.clone(), source })?;
                let local = listener.local_addr().map_err(|source| CommonError::Listen { addr, source })?;
                (Listener::Tcp(listener), format_host_port(&local.ip().to_string(), local.port()))
            }
        };
        if let Some(p) = &self.pidfile {
            write_pidfile(p)?;
        }
        ready_line(&shown);
        Ok(listener)
    }
}

/// Binds a Unix socket at `path`, replacing a socket file nobody accepts on any more (left
/// by a server that died); a live one, or a file that is not a socket, is left alone.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    UnixListener::from_std(bind_unix_std(path)?)
}

/// [`bind_unix`], as a std listener (for workers to take their own duplicates of).
pub(crate) fn bind_unix_std(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::net::UnixListener as StdListener;
    match StdListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            use std::os::unix::fs::FileTypeExt;
            let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            let dead = is_socket
                && std::os::unix::net::UnixStream::connect(path)
                    .is_err_and(|c| c.kind() == io::ErrorKind::ConnectionRefused);
            if !dead {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            StdListener::bind(path)
        }
        other => other,
    }
}

/// Where a server listens: a TCP port or a Unix socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The next connection. Errors such as EMFILE are logged and followed by a 50 ms pause,
    /// so a server out of file descriptors says so instead of spinning.
    pub async fn accept(&self) -> (Transport, Peer) {
        loop {
            let r = match self {
                Listener::Tcp(l) => l.accept().await.map(|(s, a)| (Transport::Tcp(s), Peer::Tcp(a))),
                Listener::Unix(l) => l.accept().await.map(|s| (Transport::Unix(s), Peer::Unix)),
            };
            match r {
                Ok(c) => return c,
                Err(e) => {
                    crate::error!("accept failed: {e}");
                    crate::runtime::Timer::after(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Who connected: a TCP address, or a client of a Unix socket (whose address is unnamed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix,
}

impl Peer {
    /// The IP address as the logs show it (`unix:` for a Unix socket's client, as nginx).
    pub fn ip(&self) -> String {
        match self {
            Peer::Tcp(a) => a.ip().to_string(),
            Peer::Unix => "unix:".into(),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix:"),
        }
    }
}

/// The most bytes an HTTP head read by [`read_head_bytewise`] may have.
pub const MAX_HEAD: usize = 16 * 1024;

/// Reads an HTTP head (through its blank line) one byte at a time, so that nothing after it
/// is consumed: what follows belongs to another protocol (WebSocket frames after a 101, the
/// tunnelled bytes after a proxy's 200). Fails on end of stream (`UnexpectedEof`) and past
/// [`MAX_HEAD`] bytes (`InvalidData`).
pub async fn read_head_bytewise(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
    use futures_lite::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("head over {} KiB", MAX_HEAD / 1024)));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the head ended"));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// Reads an HTTP head in chunks: the head (through its blank line) and the bytes read past
/// it, which belong to the protocol that follows. Fails like [`read_head_bytewise`].
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<(Vec<u8>, Vec<u8>)> {
    use futures_lite::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        let (from, len) = (buf.len().saturating_sub(3), buf.len());
        buf.resize(len + 2048, 0);
        let n = stream.read(&mut buf[len..]).await?;
        buf.truncate(len + n);
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the head ended"));
        }
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let tail = buf.split_off(from + i + 4);
            return Ok((buf, tail));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("head over {} KiB", MAX_HEAD / 1024)));
        }
    }
}

/// `host:port`, bracketing IPv6 literals.
pub fn format_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Prints `Listening on ADDR` (`HOST:PORT` or `unix:PATH`), whatever the log level.
pub fn ready_line(addr: &str) {
    write_forced(Level::Info, format_args!("Listening on {addr}"), true);
}

/// Writes the decimal pid (no newline), replacing any old file.
pub fn write_pidfile(path: &Path) -> Result<(), CommonError> {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, std::process::id().to_string())
        .map_err(|source| CommonError::Pidfile { path: path.to_path_buf(), source })
}

/// The byte stream beneath a connection: a TCP socket or a Unix domain socket. Clones are
/// handles on the same socket (one reads while another writes).
#[derive(Debug, Clone)]
pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Transport {
    /// The TCP socket, if this is one.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Tcp(t) => Some(t),
            Transport::Unix(_) => None,
        }
    }
}

impl From<TcpStream> for Transport {
    fn from(t: TcpStream) -> Self {
        Transport::Tcp(t)
    }
}

macro_rules! delegate_transport {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Transport::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        delegate_transport!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate_transport!(self, s => s.poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate_transport!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_transport!(self, s => s.poll_flush(cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_transport!(self, s => s.poll_close(cx))
    }
}

/// A connection, plain or TLS, either side, over TCP or a Unix socket.
#[derive(Debug)]
pub enum Stream {
    Plain(Transport),
    ServerTls(Box<futures_rustls::server::TlsStream<Transport>>),
    ClientTls(Box<futures_rustls::client::TlsStream<Transport>>),
}

impl Stream {
    /// The application protocol the TLS handshake settled on (ALPN), if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::ServerTls(s) => s.get_ref().1.alpn_protocol(),
            Stream::ClientTls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::ServerTls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Stream::ClientTls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl Stream {
    /// A client's write failed because the server hung up: what the server said before it
    /// did (a TLS alert, such as `CertificateRequired`), when that is waiting unread, is
    /// the better error. The loop reads only after an edge, so the alert may well be there.
    fn last_words<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Poll::Ready(Err(e)) = &r else { return r };
        if !matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) {
            return r;
        }
        let Stream::ClientTls(tls) = self else { return r };
        // Straight from the socket into rustls: the TLS stream's own read would try to
        // write first, and fail the same way.
        let (transport, conn) = tls.get_mut();
        match transport {
            Transport::Tcp(t) => t.assume_readable(),
            Transport::Unix(u) => u.assume_readable(),
        }
        let mut raw = [0u8; 4096];
        if let Poll::Ready(Ok(n)) = Pin::new(transport).poll_read(cx, &mut raw) {
            let _ = conn.read_tls(&mut &raw[..n]);
        }
        // rustls keeps a fatal alert it processed (here or on an earlier write's failure).
        match conn.process_new_packets() {
            Err(said) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, said))),
            Ok(_) => r,
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.as_mut();
        let r = delegate!(this, s => s.poll_write(cx, buf));
        self.get_mut().last_words(cx, r)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.as_mut();
        let r = delegate!(this, s => s.poll_write_vectored(cx, bufs));
        self.get_mut().last_words(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.as_mut();
        let r = delegate!(this, s => s.poll_flush(cx));
        self.get_mut().last_words(cx, r)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_close(cx))
    }
}

/// A server's connection taken off its thread's loop, to go on another thread's
/// ([`Stream::detach`], [`Detached::attach`]): `transfer` hands each client to the worker
/// that owns its room. It is `Send`: the socket, and a TLS session with its keys and any
/// bytes rustls holds (decrypted or not yet sent).
#[derive(Debug)]
pub enum Detached {
    Plain(Socket),
    ServerTls(Socket, Box<rustls::ServerConnection>),
}

/// A socket off any loop.
#[derive(Debug)]
pub enum Socket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Transport {
    fn is_shared(&self) -> bool {
        match self {
            Transport::Tcp(t) => t.is_shared(),
            Transport::Unix(u) => u.is_shared(),
        }
    }

    /// Checked by the caller: not shared.
    fn into_socket(self) -> Socket {
        match self {
            Transport::Tcp(t) => Socket::Tcp(t.into_std().expect("not shared")),
            Transport::Unix(u) => Socket::Unix(u.into_std().expect("not shared")),
        }
    }
}

impl Socket {
    fn attach(self) -> io::Result<Transport> {
        Ok(match self {
            Socket::Tcp(t) => Transport::Tcp(TcpStream::from_std(t)?),
            Socket::Unix(u) => Transport::Unix(UnixStream::from_std(u)?),
        })
    }
}

impl Stream {
    /// Takes a server's connection off this thread's loop. Given back (`Err`) when it
    /// cannot move: a client's TLS connection, or a socket with other handles on this loop.
    pub fn detach(self) -> Result<Detached, Stream> {
        match self {
            Stream::Plain(t) if !t.is_shared() => Ok(Detached::Plain(t.into_socket())),
            Stream::ServerTls(s) if !s.get_ref().0.is_shared() => {
                let (t, session) = s.into_inner();
                Ok(Detached::ServerTls(t.into_socket(), Box::new(session)))
            }
            other => Err(other),
        }
    }
}

impl Detached {
    /// The connection on the calling thread's loop. `tls`: the server's configuration, which
    /// a TLS connection needs (futures-rustls builds its stream only through an acceptor:
    /// the acceptor's fresh session is replaced by the moved one before it reads or writes
    /// anything, and with the handshake done there is nothing for it to do).
    pub async fn attach(self, tls: Option<&std::sync::Arc<rustls::ServerConfig>>) -> io::Result<Stream> {
        match self {
            Detached::Plain(s) => Ok(Stream::Plain(s.attach()?)),
            Detached::ServerTls(s, session) => {
                let cfg = tls.ok_or_else(|| io::Error::other("a TLS connection moved to a server without TLS"))?;
                let mut session = Some(*session);
                let s = futures_rustls::TlsAcceptor::from(cfg.clone())
                    .accept_with(s.attach()?, |fresh| {
                        if let Some(moved) = session.take() {
                            *fresh = moved;
                        }
                    })
                    .await?;
                Ok(Stream::ServerTls(Box::new(s)))
            }
        }
    }
}

/// Whether a plain connection opens with HTTP/2's connection preface ("prior knowledge"
/// h2c, as `h2load` and `curl --http2-prior-knowledge` speak), looking without consuming.
pub async fn starts_with_h2_preface(tcp: &TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    loop {
        let n = match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // Part of the preface so far: wait for the rest (rare; peek does not wait for more).
        crate::runtime::Timer::after(std::time::Duration::from_millis(1)).await;
    }
}

/// Accepts TLS on `conn` when `tls` is set.
pub async fn accept_tls(conn: Transport, tls: Option<&std::sync::Arc<rustls::ServerConfig>>) -> io::Result<Stream> {
    match tls {
        None => Ok(Stream::Plain(conn)),
        Some(cfg) => {
            let s = futures_rustls::TlsAcceptor::from(cfg.clone()).accept(conn).await?;
            Ok(Stream::ServerTls(Box::new(s)))
        }
    }
}
