//! How a client reaches its server: directly over TCP, through a proxy ([`crate::proxy`]),
//! or over a Unix domain socket; then TLS when the URL asks for it. Every client of `ws`
//! (`connect`, `ping`, `chat`, `send`, `receive`, `bench`, `curl`, `proxy_server`'s
//! upstreams) opens its connections here, so each way of getting there works for all.
//!
//! - A Unix socket comes from the URL (`ws+unix:///run/app.sock:/path`, see [`crate::url`])
//!   or from `--unix-socket PATH` (curl's flag), which then wins over the URL's host and
//!   over any proxy, as in curl. TLS (`wss+unix://`, `https://` with `--unix-socket`) runs
//!   over the socket with the URL's host as the server name.
//! - Otherwise `--proxy` or the proxy variables decide (curl's rules, in [`crate::proxy`]).

use std::path::PathBuf;

use smol::net::TcpStream;

use crate::net::{Stream, Transport};
use crate::proxy::Proxy;
use crate::tls::TlsArgs;
use crate::url::Url;
use crate::ws::ConnectError;

/// The way to a server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Via {
    /// A TCP connection to the URL's host.
    #[default]
    Direct,
    /// A tunnel through this proxy.
    Proxy(Proxy),
    /// This Unix socket.
    Unix(PathBuf),
}

impl Via {
    /// The way to `url`: `unix` (`--unix-socket`), else the URL's own socket, else the proxy
    /// `proxy` (`--proxy`; `""` for none) or the environment names.
    pub fn for_url(url: &Url, proxy: Option<&str>, unix: Option<&std::path::Path>) -> Result<Via, String> {
        if let Some(path) = unix.map(PathBuf::from).or_else(|| crate::url::unix_socket(url)) {
            return Ok(Via::Unix(path));
        }
        Ok(Proxy::for_target(proxy, url)?.map_or(Via::Direct, Via::Proxy))
    }
}

/// Opens a connection to the URL's server the way `via` says, with TLS for `wss://` and
/// `https://` (end to end, inside a proxy's tunnel).
pub async fn open_stream(url: &Url, tls: &TlsArgs, alpn: &[&[u8]], via: &Via) -> Result<Stream, ConnectError> {
    let (host, port) = crate::url::host_and_port(url);
    let addr = crate::net::format_host_port(&host, port);
    let (conn, addr) = match via {
        Via::Proxy(p) => (Transport::Tcp(p.tunnel(&host, port).await.map_err(ConnectError::Proxy)?), addr),
        Via::Direct => (Transport::Tcp(direct(&host, port, &addr).await?), addr),
        Via::Unix(path) => {
            let at = format!("unix:{}", path.display());
            let s = smol::net::unix::UnixStream::connect(path)
                .await
                .map_err(|source| ConnectError::Connect { addr: at.clone(), source })?;
            (Transport::Unix(s), at)
        }
    };
    if !crate::url::is_tls(url) {
        return Ok(Stream::Plain(conn));
    }
    Ok(Stream::ClientTls(Box::new(tls_client(conn, &host, &addr, tls, alpn).await?)))
}

/// The client side of TLS over `conn` to `host` (`addr` names it in errors), with the
/// configuration every client of `ws` uses ([`crate::tls`]).
pub async fn tls_client(
    conn: Transport,
    host: &str,
    addr: &str,
    tls: &TlsArgs,
    alpn: &[&[u8]],
) -> Result<futures_rustls::client::TlsStream<Transport>, ConnectError> {
    let config = tls.client_config(alpn)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| ConnectError::Tls { addr: addr.to_string(), reason: e.to_string() })?;
    futures_rustls::TlsConnector::from(config)
        .connect(name, conn)
        .await
        .map_err(|e| ConnectError::Tls { addr: addr.to_string(), reason: crate::tls::explain(&e) })
}

/// A TCP connection to the first of `host`'s addresses that answers.
async fn direct(host: &str, port: u16, addr: &str) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<std::net::SocketAddr> = smol::net::resolve((host, port))
        .await
        .map_err(|source| ConnectError::Resolve { host: host.to_string(), source })?;
    let mut last = None;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| ConnectError::Connect {
        addr: addr.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}
