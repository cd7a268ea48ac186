//! Clients through proxies: HTTP `CONNECT` tunnels and SOCKS5, for every client of `ws`
//! (`connect`, `ping`, `chat`, `send`, `receive`, `bench` through [`crate::dial::open_stream`],
//! and `curl`).
//!
//! - `--proxy URL` (curl's `-x` in `curl`): `http://[user:pass@]host[:port]` (CONNECT, port
//!   1080 when not given, as curl), `socks5://…` (names resolved here) or `socks5h://…`
//!   (names resolved by the proxy).
//! - Otherwise curl's variables: `https_proxy` for `wss://` and `https://`, `http_proxy` for
//!   `ws://` and `http://`, then `all_proxy`; lower case first, then upper case (except
//!   `HTTP_PROXY`, which curl ignores: CGI programs get it from the request's `Proxy:`
//!   header). `no_proxy` is a comma-separated list of host names (a name matches itself and
//!   its subdomains, a leading dot is ignored), IP addresses, or `*` for every host.
//! - Through a tunnel, TLS runs end to end: the proxy sees only the host and port.
//! - `curl` alone sends an `http://` URL to an HTTP proxy as a request in absolute form
//!   (`GET http://host/path`, [`Proxy::authorization`] in `Proxy-Authorization`), as curl
//!   does: proxies commonly allow CONNECT to port 443 only. WebSocket clients tunnel.
//! - A proxy that refuses says so in one line (`proxy 127.0.0.1:3128 refused CONNECT to
//!   host:443: 403 Forbidden`); proxy credentials are never printed.

use std::net::SocketAddr;

use crate::net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::url::Url;

/// A proxy to reach a host through.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub kind: Kind,
    pub host: String,
    pub port: u16,
    /// Credentials for the proxy itself.
    pub auth: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "{:?} proxy {}:{}", self.kind, self.host, self.port)
    }
}

/// How the proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP `CONNECT`.
    Http,
    /// SOCKS5, names resolved by us.
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
}

impl Proxy {
    /// Parses a proxy URL as curl does (no scheme: `http://`).
    pub fn parse(raw: &str) -> Result<Proxy, String> {
        let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
        let url = Url::parse(&with_scheme).map_err(|e| format!("bad proxy URL '{}': {e}", redact(raw)))?;
        let kind = match url.scheme() {
            "http" => Kind::Http,
            "socks5" => Kind::Socks5,
            "socks5h" => Kind::Socks5h,
            other => return Err(format!("proxy scheme '{other}' is not supported (http://, socks5://, socks5h://)")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host in proxy URL '{}'", redact(raw)))?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let auth = (!url.username().is_empty()).then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
        Ok(Proxy { kind, host: host.trim_matches(['[', ']']).to_string(), port: url.port().unwrap_or(1080), auth })
    }

    /// The proxy for `target` from `explicit` (`--proxy`), else from the environment; `None`
    /// for a direct connection.
    pub fn for_target(explicit: Option<&str>, target: &Url) -> Result<Option<Proxy>, String> {
        if let Some(p) = explicit {
            return if p.is_empty() { Ok(None) } else { Proxy::parse(p).map(Some) };
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let secure = matches!(target.scheme(), "wss" | "https");
        let found = if secure { env("https_proxy").or_else(|| env("HTTPS_PROXY")) } else { env("http_proxy") }
            .or_else(|| env("all_proxy"))
            .or_else(|| env("ALL_PROXY"));
        let Some(raw) = found else { return Ok(None) };
        let no_proxy = env("no_proxy").or_else(|| env("NO_PROXY")).unwrap_or_default();
        if bypassed(&no_proxy, target.host_str().unwrap_or("")) {
            return Ok(None);
        }
        Proxy::parse(&raw).map(Some)
    }

    /// `host:port` (`[v6]:port`), never the credentials.
    pub fn addr(&self) -> String {
        crate::net::format_host_port(&self.host, self.port)
    }

    /// The `Proxy-Authorization` value for the proxy's credentials, if it has any.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine;
        let (user, pass) = self.auth.as_ref()?;
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))))
    }

    /// A TCP stream to `host:port` through this proxy, ready for the target's protocol.
    pub async fn tunnel(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let at = self.addr();
        let mut tcp = TcpStream::connect_host(&self.host, self.port)
            .await
            .map_err(|e| format!("cannot connect to proxy {at}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match self.kind {
            Kind::Http => self.connect_http(&mut tcp, host, port).await?,
            Kind::Socks5 | Kind::Socks5h => self.connect_socks5(&mut tcp, host, port).await?,
        }
        Ok(tcp)
    }

    async fn connect_http(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), String> {
        let target = crate::net::format_host_port(host, port);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(basic) = self.authorization() {
            req.push_str(&format!("Proxy-Authorization: {basic}\r\n"));
        }
        req.push_str("\r\n");
        let at = self.addr();
        let io = |e: std::io::Error| format!("proxy {at}: {e}");
        tcp.write_all(req.as_bytes()).await.map_err(io)?;
        // The answer's head, byte by byte: what follows it belongs to the target.
        let head = crate::net::read_head_bytewise(tcp).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => format!("proxy {at} closed the connection before answering CONNECT"),
            std::io::ErrorKind::InvalidData => format!("proxy {at} answered CONNECT with an endless head"),
            _ => io(e),
        })?;
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let (_, code, reason) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !code.starts_with('2') {
            let reason = crate::log::escape_controls(reason, false);
            return Err(format!("proxy {at} refused CONNECT to {target}: {code} {reason}"));
        }
        Ok(())
    }

    async fn connect_socks5(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), String> {
        let at = self.addr();
        let io = |e: std::io::Error| format!("SOCKS5 proxy {at}: {e}");
        // RFC 1928 §3: the methods we offer: none, and username/password when we have them.
        let hello: &[u8] = if self.auth.is_some() { &[5, 2, 0, 2] } else { &[5, 1, 0] };
        tcp.write_all(hello).await.map_err(io)?;
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await.map_err(io)?;
        match (choice, &self.auth) {
            ([5, 0], _) => {}
            ([5, 2], Some((user, pass))) => {
                // RFC 1929.
                let (u, p) = (user.as_bytes(), pass.as_bytes());
                if u.len() > 255 || p.len() > 255 {
                    return Err(format!("SOCKS5 proxy {at}: user name or password over 255 bytes"));
                }
                let mut msg = vec![1, u.len() as u8];
                msg.extend_from_slice(u);
                msg.push(p.len() as u8);
                msg.extend_from_slice(p);
                tcp.write_all(&msg).await.map_err(io)?;
                let mut status = [0u8; 2];
                tcp.read_exact(&mut status).await.map_err(io)?;
                if status[1] != 0 {
                    return Err(format!("SOCKS5 proxy {at} refused the user name and password"));
                }
            }
            ([5, 0xff], _) | ([5, 2], None) => {
                return Err(format!("SOCKS5 proxy {at} accepts none of our authentication methods"));
            }
            _ => return Err(format!("{at} does not speak SOCKS5")),
        }
        let mut req = vec![5, 1, 0];
        match self.kind {
            Kind::Socks5h => {
                if host.len() > 255 {
                    return Err(format!("SOCKS5: host name over 255 bytes: {host}"));
                }
                req.push(3);
                req.push(host.len() as u8);
                req.extend_from_slice(host.as_bytes());
            }
            _ => {
                let addr: SocketAddr = smol::net::resolve((host, port))
                    .await
                    .ok()
                    .and_then(|a| a.into_iter().next())
                    .ok_or_else(|| format!("cannot resolve {host}"))?;
                match addr {
                    SocketAddr::V4(a) => {
                        req.push(1);
                        req.extend_from_slice(&a.ip().octets());
                    }
                    SocketAddr::V6(a) => {
                        req.push(4);
                        req.extend_from_slice(&a.ip().octets());
                    }
                }
            }
        }
        req.extend_from_slice(&port.to_be_bytes());
        tcp.write_all(&req).await.map_err(io)?;
        let mut reply = [0u8; 4];
        tcp.read_exact(&mut reply).await.map_err(io)?;
        if reply[1] != 0 {
            let why = match reply[1] {
                1 => "general failure",
                2 => "connection not allowed by ruleset",
                3 => "network unreachable",
                4 => "host unreachable",
                5 => "connection refused",
                6 => "TTL expired",
                7 => "command not supported",
                8 => "address type not supported",
                _ => "unknown error",
            };
            let target = crate::net::format_host_port(host, port);
            return Err(format!("SOCKS5 proxy {at} could not reach {target}: {why}"));
        }
        // The bound address, which we do not need.
        let skip = match reply[3] {
            1 => 4,
            4 => 16,
            3 => {
                let mut n = [0u8; 1];
                tcp.read_exact(&mut n).await.map_err(io)?;
                n[0] as usize
            }
            _ => return Err(format!("SOCKS5 proxy {at} sent an unknown address type")),
        };
        let mut rest = vec![0u8; skip + 2];
        tcp.read_exact(&mut rest).await.map_err(io)?;
        Ok(())
    }
}

/// Whether `host` is in a `no_proxy` list (curl's rules).
pub fn bypassed(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        let entry = entry.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(entry.as_str(), |(h, _)| h);
        let entry = entry.trim_matches(['[', ']']);
        host == entry || host.ends_with(&format!(".{entry}"))
    })
}

/// A proxy URL as it may be printed: without any `user:password@` (parsed or not).
fn redact(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    match raw[start..].rfind('@') {
        Some(at) => format!("{}***@{}", &raw[..start], &raw[start + at + 1..]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_like_curl() {
        let p = Proxy::parse("http://u%40x:p%3As@127.0.0.1:3128").unwrap();
        assert_eq!((p.kind, p.host.as_str(), p.port), (Kind::Http, "127.0.0.1", 3128));
        assert_eq!(p.auth, Some(("u@x".into(), "p:s".into())));
        assert_eq!(Proxy::parse("proxy.test").unwrap().port, 1080);
        assert_eq!(Proxy::parse("socks5h://[::1]:9050").unwrap().host, "::1");
        assert!(Proxy::parse("ftp://x").is_err());
        assert!(!format!("{:?}", Proxy::parse("http://u:secret@h:1").unwrap()).contains("secret"));
        assert!(!Proxy::parse("http://u:secret@").unwrap_err().contains("secret"));
    }

    #[test]
    fn no_proxy_follows_curls_rules() {
        assert!(bypassed("*", "anything.test"));
        assert!(bypassed("example.com", "example.com"));
        assert!(bypassed("example.com", "api.example.com"));
        assert!(bypassed(".example.com", "api.example.com"));
        assert!(!bypassed("example.com", "badexample.com"));
        assert!(bypassed("localhost, 127.0.0.1", "127.0.0.1"));
        assert!(bypassed("example.com:443", "example.com"));
        assert!(bypassed("[::1]", "[::1]"));
        assert!(!bypassed("", "example.com"));
    }
}
