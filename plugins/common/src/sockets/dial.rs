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
//! - A direct connection takes curl's [`Overrides`]: `--connect-to` (another host and port
//!   for this one), `--resolve` (these addresses for this name and port) and `-4`/`-6`;
//!   the URL's name still goes in `Host` and in TLS's server name.

use std::path::PathBuf;

use crate::net::TcpStream;

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

/// curl's ways of choosing where a direct connection goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--resolve HOST:PORT:ADDR[,ADDR…]` (`*` for any host).
    pub resolve: Vec<(String, u16, Vec<std::net::IpAddr>)>,
    /// `--connect-to HOST1:PORT1:HOST2:PORT2` (empty parts: any host or port; the same
    /// host or port).
    pub connect_to: Vec<(String, Option<u16>, String, Option<u16>)>,
    /// `-4` or `-6`.
    pub family: Option<Family>,
}

/// An IP version to keep to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Overrides {
    /// Parses curl's `--resolve` and `--connect-to` arguments.
    pub fn parse(resolve: &[String], connect_to: &[String], family: Option<Family>) -> Result<Overrides, String> {
        let port = |p: &str, arg: &str| p.parse::<u16>().map_err(|_| format!("bad port in '{arg}'"));
        let mut o = Overrides { family, ..Overrides::default() };
        for arg in resolve {
            let mut parts = arg.splitn(3, ':');
            let (Some(host), Some(p), Some(addrs)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("--resolve '{arg}' is not HOST:PORT:ADDRESS[,ADDRESS]"));
            };
            let addrs = addrs
                .split(',')
                .map(|a| a.trim_matches(['[', ']']).parse().map_err(|_| format!("bad address in --resolve '{arg}'")))
                .collect::<Result<Vec<_>, _>>()?;
            o.resolve.push((host.trim_matches(['[', ']']).to_ascii_lowercase(), port(p, arg)?, addrs));
        }
        for arg in connect_to {
            let fields =
                split_host_ports(arg).ok_or_else(|| format!("--connect-to '{arg}' is not HOST1:PORT1:HOST2:PORT2"))?;
            let opt_port = |p: &str| if p.is_empty() { Ok(None) } else { port(p, arg).map(Some) };
            o.connect_to.push((
                fields[0].to_ascii_lowercase(),
                opt_port(&fields[1])?,
                fields[2].clone(),
                opt_port(&fields[3])?,
            ));
        }
        Ok(o)
    }

    /// Where a connection to `host:port` goes: `--connect-to`'s first match, else itself.
    fn target(&self, host: &str, port: u16) -> (String, u16) {
        for (h1, p1, h2, p2) in &self.connect_to {
            if (h1.is_empty() || h1.eq_ignore_ascii_case(host)) && p1.is_none_or(|p| p == port) {
                let host = if h2.is_empty() { host.to_string() } else { h2.clone() };
                return (host, p2.unwrap_or(port));
            }
        }
        (host.to_string(), port)
    }

    /// `--resolve`'s addresses for `host:port`, if it names them.
    fn resolved(&self, host: &str, port: u16) -> Option<Vec<std::net::IpAddr>> {
        let named = |h: &str| h == "*" || h.eq_ignore_ascii_case(host);
        self.resolve.iter().find(|(h, p, _)| named(h) && *p == port).map(|(_, _, a)| a.clone())
    }
}

/// `HOST1:PORT1:HOST2:PORT2`, hosts possibly in brackets (IPv6).
fn split_host_ports(arg: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut rest = arg;
    for i in 0..4 {
        let (field, tail) = if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            (inner[..end].to_string(), inner[end + 1..].strip_prefix(':').unwrap_or(&inner[end + 1..]))
        } else if i == 3 {
            (rest.to_string(), "")
        } else {
            let (f, t) = rest.split_once(':')?;
            (f.to_string(), t)
        };
        fields.push(field);
        rest = tail;
    }
    Some(fields)
}

/// Opens a connection to the URL's server the way `via` says, with TLS for `wss://` and
/// `https://` (end to end, inside a proxy's tunnel).
pub async fn open_stream(url: &Url, tls: &TlsArgs, alpn: &[&[u8]], via: &Via) -> Result<Stream, ConnectError> {
    open_stream_timed(url, tls, alpn, via, &Overrides::default()).await.map(|(s, _)| s)
}

/// When each step of opening a connection ended, and the addresses it joined (curl's
/// `-w` `time_namelookup`, `time_connect`, `time_appconnect`, `remote_ip`, …).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub resolved: Option<std::time::Instant>,
    pub connected: Option<std::time::Instant>,
    /// The TLS handshake (none for plain connections).
    pub secured: Option<std::time::Instant>,
    pub remote: Option<std::net::SocketAddr>,
    pub local: Option<std::net::SocketAddr>,
}

/// [`open_stream`] with curl's [`Overrides`] for a direct connection, telling when each
/// step ended.
pub async fn open_stream_timed(
    url: &Url,
    tls: &TlsArgs,
    alpn: &[&[u8]],
    via: &Via,
    overrides: &Overrides,
) -> Result<(Stream, Phases), ConnectError> {
    let (host, port) = crate::url::host_and_port(url);
    let addr = crate::net::format_host_port(&host, port);
    let mut phases = Phases::default();
    let (conn, addr) = match via {
        Via::Proxy(p) => (Transport::Tcp(p.tunnel(&host, port).await.map_err(ConnectError::Proxy)?), addr),
        Via::Direct => {
            let (to_host, to_port) = overrides.target(&host, port);
            let to = crate::net::format_host_port(&to_host, to_port);
            (Transport::Tcp(direct(&to_host, to_port, &to, overrides, &mut phases).await?), to)
        }
        Via::Unix(path) => {
            let at = format!("unix:{}", path.display());
            let s = crate::net::UnixStream::connect(path)
                .await
                .map_err(|source| ConnectError::Connect { addr: at.clone(), source })?;
            (Transport::Unix(s), at)
        }
    };
    if let Transport::Tcp(t) = &conn {
        phases.remote = t.peer_addr().ok();
        phases.local = t.local_addr().ok();
    }
    let now = Some(std::time::Instant::now());
    phases.resolved = phases.resolved.or(now);
    phases.connected = phases.connected.or(now);
    if !crate::url::is_tls(url) {
        return Ok((Stream::Plain(conn), phases));
    }
    let secured = tls_client(conn, &host, &addr, tls, alpn).await?;
    phases.secured = Some(std::time::Instant::now());
    Ok((Stream::ClientTls(Box::new(secured)), phases))
}

/// The client side of TLS over `conn` to `host` (`addr` names it in errors), with the
/// configuration every client of `ws` uses ([`crate::tls`]).
pub async fn tls_client<IO>(
    conn: IO,
    host: &str,
    addr: &str,
    tls: &TlsArgs,
    alpn: &[&[u8]],
) -> Result<futures_rustls::client::TlsStream<IO>, ConnectError>
where
    IO: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
{
    let config = tls.client_config(alpn)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| ConnectError::Tls { addr: addr.to_string(), reason: e.to_string() })?;
    futures_rustls::TlsConnector::from(config)
        .connect(name, conn)
        .await
        .map_err(|e| ConnectError::Tls { addr: addr.to_string(), reason: crate::tls::explain(&e) })
}

/// A TCP connection to the first of `host`'s addresses that answers.
async fn direct(
    host: &str,
    port: u16,
    addr: &str,
    overrides: &Overrides,
    phases: &mut Phases,
) -> Result<TcpStream, ConnectError> {
    let mut addrs: Vec<std::net::SocketAddr> = match overrides.resolved(host, port) {
        Some(ips) => ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, port)).collect(),
        None => smol::net::resolve((host, port))
            .await
            .map_err(|source| ConnectError::Resolve { host: host.to_string(), source })?,
    };
    match overrides.family {
        Some(Family::V4) => addrs.retain(std::net::SocketAddr::is_ipv4),
        Some(Family::V6) => addrs.retain(std::net::SocketAddr::is_ipv6),
        None => {}
    }
    phases.resolved = Some(std::time::Instant::now());
    if addrs.is_empty() {
        let which = if overrides.family == Some(Family::V4) { "IPv4" } else { "IPv6" };
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {which} address"));
        return Err(ConnectError::Resolve { host: host.to_string(), source });
    }
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
    phases.connected = Some(std::time::Instant::now());
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curls_override_arguments() {
        let o = Overrides::parse(
            &["api.test:443:127.0.0.1,[::1]".into(), "*:80:10.0.0.1".into()],
            &["a.test:443:[::1]:8443".into(), "::b.test:".into()],
            None,
        )
        .unwrap();
        assert_eq!(o.resolved("API.test", 443).unwrap().len(), 2);
        assert_eq!(o.resolved("other", 80).unwrap(), vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(o.resolved("api.test", 80).unwrap(), vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        assert!(o.resolved("api.test", 8080).is_none());
        assert_eq!(o.target("a.test", 443), ("::1".into(), 8443));
        assert_eq!(o.target("z.test", 9), ("b.test".into(), 9));
        assert!(Overrides::parse(&["nocolon".into()], &[], None).is_err());
        assert!(Overrides::parse(&[], &["a:b:c:d".into()], None).is_err());
    }
}
