//! WebSocket plumbing shared by every client and server plugin, on async-tungstenite.
//!
//! tungstenite reports a peer's protocol violation as an error but does not close the
//! connection for us, so [`close_frame_for`] maps each error to the close code RFC 6455 asks
//! for (1002 protocol, 1007 bad UTF-8, 1009 too big) and [`fail`] sends it. Its buffers are
//! sized here for many idle connections (see [`config`]).

use std::time::Duration;

use crate::runtime::Timer;
use async_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use async_tungstenite::tungstenite::handshake::client::Response;
use async_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
pub use async_tungstenite::tungstenite::protocol::WebSocketConfig;
pub use async_tungstenite::tungstenite::protocol::frame::CloseFrame;
pub use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use async_tungstenite::tungstenite::{self, Message};
use futures_lite::FutureExt;

use async_tungstenite::tungstenite::protocol::Role;

use crate::deflate::{Agreement, DeflateIo, ServerPolicy};
use crate::net::Stream;
use crate::sockets::readahead::ReadAhead;
use crate::tls::TlsArgs;
use crate::url::Url;

/// A WebSocket over a plain or TLS stream, with or without permessage-deflate.
pub type WsStream = async_tungstenite::WebSocketStream<WsIo>;

/// The bytes beneath tungstenite: the socket itself, or the socket through
/// permessage-deflate when the handshake agreed it (see [`crate::deflate`]), read ahead in
/// big pieces that are held only while tungstenite has not taken them (see
/// [`crate::sockets::readahead`]: an idle connection holds no read buffer).
#[derive(Debug)]
pub struct WsIo(ReadAhead<Layer>);

#[derive(Debug)]
enum Layer {
    Plain(Stream),
    Deflate(Box<DeflateIo<Stream>>),
}

impl WsIo {
    fn plain(stream: Stream) -> Self {
        WsIo(ReadAhead::new(Layer::Plain(stream)))
    }

    fn deflate_over(layer: DeflateIo<Stream>) -> Self {
        WsIo(ReadAhead::new(Layer::Deflate(Box::new(layer))))
    }

    /// The socket beneath.
    pub fn stream(&self) -> &Stream {
        match self.0.get_ref() {
            Layer::Plain(s) => s,
            Layer::Deflate(d) => d.get_ref(),
        }
    }

    /// The deflate layer, when it was negotiated.
    pub fn deflate(&self) -> Option<&DeflateIo<Stream>> {
        match self.0.get_ref() {
            Layer::Plain(_) => None,
            Layer::Deflate(d) => Some(d),
        }
    }

    /// The deflate layer, to change how it sends (see [`DeflateIo::set_compress`]).
    pub fn deflate_mut(&mut self) -> Option<&mut DeflateIo<Stream>> {
        match self.0.get_mut() {
            Layer::Plain(_) => None,
            Layer::Deflate(d) => Some(d),
        }
    }

    /// The socket, for frame-level work; only without deflate (whose frames differ from the
    /// socket's bytes). Servers that work on frames do not negotiate it, and take the socket
    /// before reading anything through tungstenite: bytes read ahead would stay behind.
    pub fn into_plain(self) -> Option<Stream> {
        let (layer, rest) = self.0.into_parts();
        debug_assert!(rest.is_empty(), "bytes read through tungstenite before taking the socket");
        match layer {
            Layer::Plain(s) => Some(s),
            Layer::Deflate(_) => None,
        }
    }
}

macro_rules! io_delegate {
    ($layer:expr, $s:ident => $e:expr) => {
        match $layer {
            Layer::Plain($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Layer::Deflate($s) => {
                let $s = std::pin::Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl futures_lite::AsyncRead for Layer {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        io_delegate!(self.get_mut(), s => s.poll_read(cx, buf))
    }
}

impl futures_lite::AsyncRead for WsIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for WsIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        io_delegate!(self.get_mut().0.get_mut(), s => s.poll_write(cx, buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        io_delegate!(self.get_mut().0.get_mut(), s => s.poll_flush(cx))
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        io_delegate!(self.get_mut().0.get_mut(), s => s.poll_close(cx))
    }
}

/// Wraps a socket whose handshake just finished: through deflate when it was agreed.
/// `tail` holds the bytes read past the handshake, the peer's first frames.
async fn websocket(
    stream: Stream,
    role: Role,
    agreed: Option<Agreement>,
    max_message: usize,
    tail: Vec<u8>,
) -> WsStream {
    let server = role == Role::Server;
    match agreed {
        None => {
            async_tungstenite::WebSocketStream::from_partially_read(
                WsIo::plain(stream),
                tail,
                role,
                Some(config(max_message)),
            )
            .await
        }
        Some(a) => {
            let io = WsIo::deflate_over(DeflateIo::new(stream, server, a, max_message, tail));
            // The layer hands inflated frames up unmasked; it checked the client's masks itself.
            let cfg = config(max_message).accept_unmasked_frames(server);
            async_tungstenite::WebSocketStream::from_raw_socket(io, role, Some(cfg)).await
        }
    }
}

/// The `User-Agent` / `Server` value we send.
pub const USER_AGENT: &str = concat!("ws/", env!("CARGO_PKG_VERSION"), " (rust; tungstenite)");

/// Default largest incoming message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// tungstenite's own read buffer. It allocates it when a connection opens and keeps it for
/// the connection's life, so it is small; reads of the socket are made in big pieces beneath
/// it (see [`WsIo`]).
pub const READ_BUFFER: usize = 1024;

/// The tungstenite configuration: `max_message` bytes at most per message (and per frame), a
/// [`READ_BUFFER`]-byte read buffer (tungstenite's default, 128 KiB, would cost 1.25 GiB for
/// 10,000 idle clients), and writes buffered up to 64 KiB between flushes.
pub fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Close code and reason of a received close frame; 1005 (no status) when there was none.
pub fn close_parts(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(f) => (u16::from(f.code), f.reason.to_string()),
        None => (1005, String::new()),
    }
}

/// A close frame with `code` and `reason` (truncated to the 123 bytes a close frame allows).
pub fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_string().into() }
}

/// The close frame RFC 6455 asks us to send after a read error, if any.
pub fn close_frame_for(err: &tungstenite::Error) -> Option<CloseFrame> {
    use tungstenite::Error as E;
    match err {
        E::Utf8(_) => Some(close_frame(1007, "Invalid frame payload data")),
        E::Capacity(CapacityError::MessageTooLong { .. }) => Some(close_frame(1009, "Message too big")),
        E::Protocol(p) => match p {
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing => None,
            ProtocolError::InvalidCloseSequence => Some(close_frame(1002, "Invalid close code")),
            other => Some(close_frame(1002, &format!("Protocol error: {other}"))),
        },
        _ => None,
    }
}

/// Why `err` ended the connection, for the log: the deflate layer's reason when it was the
/// layer that refused a frame (invalid compressed data, a message inflating past the limit),
/// else tungstenite's.
pub fn reason(ws: &WsStream, err: &tungstenite::Error) -> String {
    match ws.get_ref().deflate().and_then(|d| d.failure()) {
        Some(why) => why.to_string(),
        None => err.to_string(),
    }
}

/// After a read error: send the matching close frame (if the error calls for one) and give
/// the peer a moment to answer it. Returns the code we closed with.
pub async fn fail(ws: &mut WsStream, err: &tungstenite::Error) -> Option<u16> {
    let mut frame = close_frame_for(err)?;
    if let Some(why) = ws.get_ref().deflate().and_then(|d| d.failure()) {
        // The deflate layer found it: its reason, not tungstenite's word for the frame it
        // was handed to refuse.
        frame = close_frame(u16::from(frame.code), why);
    }
    let code = u16::from(frame.code);
    let _ = ws
        .close(Some(frame))
        .or(async {
            Timer::after(Duration::from_secs(1)).await;
            Ok(())
        })
        .await;
    Some(code)
}

/// Exponential backoff of IXWebSocket: `min(max_wait, 100 ms · 2^attempt)`, at least 1 ms.
pub fn backoff(attempt: u32, max_wait: Duration) -> Duration {
    let ms = 100u64.saturating_mul(1u64.checked_shl(attempt.min(40)).unwrap_or(u64::MAX));
    Duration::from_millis(ms).clamp(Duration::from_millis(1), max_wait.max(Duration::from_millis(1)))
}

/// Why a client could not open a WebSocket.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("server answered HTTP {status} instead of switching to WebSocket")]
    Http { status: u16 },
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    #[error("{0}")]
    Config(#[from] crate::CommonError),
    #[error("{0}")]
    Proxy(String),
}

impl ConnectError {
    /// Errors that retrying cannot fix: a certificate the peer will keep presenting, an HTTP
    /// refusal, a bad configuration.
    pub fn is_fatal(&self) -> bool {
        match self {
            ConnectError::Tls { reason, .. } => reason.contains("certificate") || reason.contains("Certificate"),
            ConnectError::Http { status } => (400..500).contains(status),
            ConnectError::Config(_) | ConnectError::Proxy(_) => true,
            _ => false,
        }
    }
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    pub tls: TlsArgs,
    pub timeout: Duration,
    pub max_message: usize,
    /// The way to the server: directly, a proxy, a Unix socket ([`crate::dial`]).
    pub via: crate::dial::Via,
    /// Offer permessage-deflate (`-x` turns it off).
    pub deflate: bool,
}

/// The flags every WebSocket client shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Connection and handshake timeout, in seconds
    #[arg(long = "connect-timeout", default_value_t = 60, value_name = "S")]
    pub connect_timeout: u64,
    /// Write the process id to FILE
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<std::path::PathBuf>,
    /// Connect through this proxy: http://[user:pass@]host:port (CONNECT), socks5://,
    /// socks5h:// (default: https_proxy, http_proxy, all_proxy, no_proxy; "" for none)
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Connect to the server through this Unix domain socket (the URL still gives the
    /// request path and Host; ws+unix:///PATH:/request says both at once)
    #[arg(long = "unix-socket", value_name = "PATH")]
    pub unix_socket: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ClientArgs {
    /// What every client does before connecting: refuse bad TLS files now (not at the first
    /// attempt) and write the pidfile.
    pub fn prepare(&self) -> Result<(), crate::CommonError> {
        self.tls.client_config(&[])?;
        if let Some(p) = self.proxy.as_deref().filter(|p| !p.is_empty()) {
            crate::proxy::Proxy::parse(p).map_err(crate::CommonError::Usage)?;
        }
        if let Some(p) = &self.pidfile {
            crate::net::write_pidfile(p)?;
        }
        Ok(())
    }

    /// The connection timeout (at least a second).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout.max(1))
    }

    /// Options to connect to `url` with these flags.
    pub fn options(&self, url: Url) -> ClientOptions {
        let via =
            crate::dial::Via::for_url(&url, self.proxy.as_deref(), self.unix_socket.as_deref()).unwrap_or_else(|e| {
                crate::warning!("{e}: connecting directly");
                crate::dial::Via::Direct
            });
        ClientOptions { via, ..ClientOptions::new(url, self.tls.clone(), self.timeout()) }
    }
}

impl ClientOptions {
    /// Options for `url`: no extra headers, no subprotocol, the default message limit.
    pub fn new(url: Url, tls: TlsArgs, timeout: Duration) -> Self {
        ClientOptions {
            url,
            headers: Vec::new(),
            subprotocol: None,
            tls,
            timeout,
            max_message: DEFAULT_MAX_MESSAGE,
            via: crate::dial::Via::Direct,
            deflate: true,
        }
    }
}

/// Logs the server's handshake headers, a `Name: value` line each, as the reference does.
pub fn log_headers(response: &Response) {
    for (k, v) in response.headers() {
        crate::info!("{}: {}", header_case(k.as_str()), String::from_utf8_lossy(v.as_bytes()));
    }
}

async fn with_timeout<T>(
    d: Duration,
    fut: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    fut.or(async {
        Timer::after(d).await;
        Err(ConnectError::Timeout(d))
    })
    .await
}

/// Connects, runs the opening handshake, and returns the socket and the server's response.
/// permessage-deflate is offered unless `opts.deflate` is off, and used when the server
/// agrees; an answer we did not allow fails the handshake.
pub async fn connect(opts: &ClientOptions) -> Result<(WsStream, Response), ConnectError> {
    with_timeout(opts.timeout, async {
        let mut stream = crate::dial::open_stream(&opts.url, &opts.tls, &[], &opts.via).await?;
        let mut extra = opts.headers.clone();
        if let Some(p) = &opts.subprotocol {
            extra.push(("Sec-WebSocket-Protocol".into(), p.clone()));
        }
        if opts.deflate {
            extra.push(("Sec-WebSocket-Extensions".into(), crate::deflate::CLIENT_OFFER.into()));
        }
        let (headers, tail) = crate::frames::client_handshake(&mut stream, &opts.url, &extra, false).await?;
        let answers = crate::headers::values(&headers, "Sec-WebSocket-Extensions");
        let agreed = if opts.deflate {
            crate::deflate::accept_answer(&answers).map_err(ConnectError::Handshake)?
        } else if let Some(a) = answers.first() {
            return Err(ConnectError::Handshake(format!("the server accepted an extension that was not offered: {a}")));
        } else {
            None
        };
        let mut response = Response::new(None);
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (k, v) in &headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                response.headers_mut().append(k, v);
            }
        }
        let ws = websocket(stream, Role::Client, agreed, opts.max_message, tail).await;
        Ok((ws, response))
    })
    .await
}

/// Like [`connect`], but hands back the raw stream right after the handshake (read byte by
/// byte, so no frame that follows the response is swallowed), for relays that work on
/// frames as bytes. Returns the response headers.
pub async fn connect_raw(opts: &ClientOptions) -> Result<(Stream, Vec<(String, String)>), ConnectError> {
    with_timeout(opts.timeout, async {
        let mut stream = crate::dial::open_stream(&opts.url, &opts.tls, &[], &opts.via).await?;
        let mut extra = opts.headers.clone();
        if let Some(p) = &opts.subprotocol {
            extra.push(("Sec-WebSocket-Protocol".into(), p.clone()));
        }
        let (headers, _) = crate::frames::client_handshake(&mut stream, &opts.url, &extra, true).await?;
        Ok((stream, headers))
    })
    .await
}

/// What a server saw of a client's opening handshake.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// Path and query, e.g. `/chat?room=1`.
    pub uri: String,
    /// Request headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The permessage-deflate the answer agreed, if any.
    pub deflate: Option<Agreement>,
}

impl Handshake {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A refusal before the upgrade: an HTTP status and a one-line body.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

/// Why a server's opening handshake did not finish.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The request was answered with an HTTP error (a bad request, or `decide` said no).
    #[error("answered {status}: {reason}")]
    Refused { status: u16, reason: String },
}

/// The most bytes a request head may have (nginx's default large_client_header_buffers is
/// 8 KiB per line; browsers send ~1 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// How a server answers an upgrade it accepts.
#[derive(Debug, Default)]
pub enum Answer {
    /// Its own way: the first subprotocol offered, permessage-deflate as the policy says.
    #[default]
    Own,
    /// With these header lines instead (a relay answers what its upstream answered), and the
    /// frames left as they are on the socket, whatever extension the lines agree.
    Relayed(Vec<(String, String)>),
}

/// Runs the server side of the opening handshake (RFC 6455 §4.2). `decide` sees the request
/// first and may refuse it with an HTTP status, or say how to answer it (see [`Answer`]). By
/// default the first subprotocol offered, if any, is accepted.
///
/// The request is read and checked here rather than by tungstenite, which closes the socket
/// without a word on a bad request: here a client always gets an answer, 400 with a
/// one-line reason (not an upgrade, a missing or bad `Sec-WebSocket-Key`, …), or 426 with
/// `Sec-WebSocket-Version: 13` for another protocol version (§4.2.2).
pub async fn accept(
    mut stream: Stream,
    max_message: usize,
    deflate: Option<ServerPolicy>,
    decide: impl AsyncFnOnce(&Handshake) -> Result<Answer, Refusal>,
) -> Result<(WsStream, Handshake), AcceptError> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    // Read into the heap: a buffer inside this future would make every connection's task
    // (which holds it) that much bigger for its whole life.
    let mut buf = Vec::new();
    let end = loop {
        let (from, len) = (buf.len().saturating_sub(3), buf.len());
        buf.resize(len + 2048, 0);
        let n = stream.read(&mut buf[len..]).await?;
        buf.truncate(len + n);
        if n == 0 {
            return Err(
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the request head ended").into()
            );
        }
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + i + 4;
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Err(refuse(&mut stream, 431, "request head too large", "").await);
        }
    };
    let checked = check_upgrade(&buf[..end]);
    let (seen, key) = match checked {
        Ok(ok) => ok,
        Err((status, reason, extra)) => return Err(refuse(&mut stream, status, &reason, extra).await),
    };
    let answer = match decide(&seen).await {
        Ok(a) => a,
        Err(r) => return Err(refuse(&mut stream, r.status, &r.reason, "").await),
    };
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\nServer: {USER_AGENT}\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if let Answer::Relayed(lines) = answer {
        for (k, v) in lines {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
        let tail = buf.split_off(end);
        return Ok((websocket(stream, Role::Server, None, max_message, tail).await, seen));
    }
    if let Some(first) = seen
        .header("Sec-WebSocket-Protocol")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|p| !p.is_empty() && HeaderValue::from_str(p).is_ok())
    {
        head.push_str(&format!("Sec-WebSocket-Protocol: {first}\r\n"));
    }
    let offers = crate::headers::values(&seen.headers, "Sec-WebSocket-Extensions");
    let agreed = deflate.and_then(|policy| crate::deflate::negotiate(&offers, policy)).map(|(answer, agreed)| {
        head.push_str(&format!("Sec-WebSocket-Extensions: {answer}\r\n"));
        agreed
    });
    let mut seen = seen;
    seen.deflate = agreed;
    // A server that echoes frames as they are works on the socket itself.
    let layer = agreed.filter(|_| !deflate.is_some_and(|p| p.echo_frames));
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    // Bytes after the head are the client's first frames (it should have waited for the 101).
    let tail = buf.split_off(end);
    Ok((websocket(stream, Role::Server, layer, max_message, tail).await, seen))
}

/// Checks a request head for a WebSocket upgrade: what the server saw and the key, or the
/// status, reason and extra header lines of the answer.
fn check_upgrade(head: &[u8]) -> Result<(Handshake, String), (u16, String, &'static str)> {
    let bad = |reason: &str| (400, reason.to_string(), "");
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => return Err((431, "too many header fields".into(), "")),
        Err(e) => return Err(bad(&format!("malformed request head ({e})"))),
    }
    let seen = Handshake {
        uri: req.path.unwrap_or("/").to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| (header_case(&h.name.to_ascii_lowercase()), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
        deflate: None,
    };
    let has_token = |name: &str, token: &str| crate::headers::has_token(&seen.headers, name, token);
    if req.method != Some("GET") {
        return Err((405, "a WebSocket upgrade is a GET request".into(), "Allow: GET\r\n"));
    }
    if req.version != Some(1) {
        return Err(bad("a WebSocket upgrade needs HTTP/1.1"));
    }
    if seen.header("Host").is_none() {
        return Err(bad("no Host header"));
    }
    if !has_token("Upgrade", "websocket") {
        return Err(bad("not a WebSocket upgrade request (no Upgrade: websocket)"));
    }
    if !has_token("Connection", "upgrade") {
        return Err(bad("not a WebSocket upgrade request (no Connection: Upgrade)"));
    }
    if seen.header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Err((
            426,
            "unsupported Sec-WebSocket-Version (13 is supported)".into(),
            "Sec-WebSocket-Version: 13\r\n",
        ));
    }
    let key = seen.header("Sec-WebSocket-Key").map(str::trim).unwrap_or("");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !decoded.is_ok_and(|k| k.len() == 16) {
        return Err(bad(if key.is_empty() { "missing Sec-WebSocket-Key" } else { "bad Sec-WebSocket-Key" }));
    }
    let key = key.to_string();
    Ok((seen, key))
}

/// Answers a request that will not be upgraded: `status`, the reason as a one-line body,
/// then closes. Returns the error for the caller's log.
async fn refuse(stream: &mut Stream, status: u16, reason: &str, extra: &str) -> AcceptError {
    use futures_lite::AsyncWriteExt;
    let phrase = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let body = format!("{reason}\n");
    let head = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nServer: {USER_AGENT}\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all([head.as_bytes(), body.as_bytes()].concat().as_slice()).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
    AcceptError::Refused { status, reason: reason.to_string() }
}

/// `sec-websocket-key` → `Sec-Websocket-Key`: http lower-cases names; logs read better
/// capitalised, as the reference prints them.
pub fn header_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

/// Raises the open-file limit towards `want` (as far as the hard limit allows) and returns
/// what it is now.
pub fn raise_fd_limit(want: u64) -> u64 {
    rlimit::increase_nofile_limit(want).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_reference_table() {
        let max = Duration::from_millis(10_000);
        let got: Vec<u128> = (0..9).map(|n| backoff(n, max).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        assert_eq!(backoff(60, max).as_millis(), 10000);
    }

    #[test]
    fn errors_map_to_rfc_close_codes() {
        let e = tungstenite::Error::Capacity(CapacityError::MessageTooLong { size: 2, max_size: 1 });
        assert_eq!(u16::from(close_frame_for(&e).unwrap().code), 1009);
        let e = tungstenite::Error::Protocol(ProtocolError::NonZeroReservedBits);
        assert_eq!(u16::from(close_frame_for(&e).unwrap().code), 1002);
        let bad = vec![0xffu8];
        #[allow(invalid_from_utf8)]
        let utf8 = std::str::from_utf8(&bad).unwrap_err();
        assert_eq!(u16::from(close_frame_for(&tungstenite::Error::Utf8(utf8.to_string())).unwrap().code), 1007);
    }

    #[test]
    fn close_reason_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let f = close_frame(1000, &long);
        // 61 two-byte characters fit in 123 bytes; the 62nd would be cut in half.
        assert_eq!(f.reason.as_str(), "é".repeat(61));
        assert_eq!(close_frame(1001, "bye").reason.as_str(), "bye", "a short reason is kept whole");
        assert_eq!(u16::from(close_frame(4001, "").code), 4001);
    }

    #[test]
    fn header_names_are_capitalised_like_the_reference() {
        assert_eq!(header_case("sec-websocket-key"), "Sec-Websocket-Key");
        assert_eq!(header_case("host"), "Host");
    }
}
