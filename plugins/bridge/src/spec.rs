//! The two sides of a bridge, as the user writes them, and how each is opened.
//!
//! Message sides carry WebSocket messages: `ws://…`, `wss://…`, `ws+unix://…` (a client) and
//! `ws-listen:HOST:PORT` (a server). Byte sides carry a stream: `tcp:HOST:PORT`,
//! `tcp-listen:HOST:PORT`, `unix:PATH`, `unix-listen:PATH`, `exec:COMMAND` (run by `sh -c`,
//! one process per connection, its stdin and stdout the stream, its stderr the bridge's) and
//! `stdio`. The `-listen` forms accept connections, and only the first side may be one.

use std::path::PathBuf;
use std::pin::Pin;

use futures_lite::{AsyncRead, AsyncWrite};
use ws_common::url::Url;

/// One side, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    WsClient(Url),
    WsListen { host: String, port: u16 },
    Tcp { host: String, port: u16 },
    TcpListen { host: String, port: u16 },
    Unix(PathBuf),
    UnixListen(PathBuf),
    Exec(String),
    Stdio,
}

impl Spec {
    pub(crate) fn parse(raw: &str) -> Result<Spec, String> {
        let host_port = |rest: &str, what: &str| -> Result<(String, u16), String> {
            // [v6]:port, host:port, or :port / port alone (127.0.0.1)
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
                None => ("", rest),
            };
            let port = port.parse::<u16>().map_err(|_| format!("{what}: '{raw}' needs HOST:PORT"))?;
            Ok((if host.is_empty() { "127.0.0.1".into() } else { host.to_string() }, port))
        };
        if raw.starts_with("ws://")
            || raw.starts_with("wss://")
            || raw.starts_with("ws+unix://")
            || raw.starts_with("wss+unix://")
        {
            return ws_common::url::parse_ws_url(raw).map(Spec::WsClient).map_err(|e| e.to_string());
        }
        let (kind, rest) = raw.split_once(':').unwrap_or((raw, ""));
        Ok(match kind {
            "stdio" if rest.is_empty() => Spec::Stdio,
            "ws-listen" | "ws-l" => {
                let (host, port) = host_port(rest, kind)?;
                Spec::WsListen { host, port }
            }
            "tcp" => {
                let (host, port) = host_port(rest, kind)?;
                Spec::Tcp { host, port }
            }
            "tcp-listen" | "tcp-l" => {
                let (host, port) = host_port(rest, kind)?;
                Spec::TcpListen { host, port }
            }
            "unix" if !rest.is_empty() => Spec::Unix(rest.into()),
            "unix-listen" | "unix-l" if !rest.is_empty() => Spec::UnixListen(rest.into()),
            "exec" if !rest.trim().is_empty() => Spec::Exec(rest.to_string()),
            _ => {
                return Err(format!(
                    "'{raw}' is not a side: ws://… wss://… ws-listen:HOST:PORT tcp:HOST:PORT tcp-listen:HOST:PORT \
                     unix:PATH unix-listen:PATH exec:COMMAND stdio"
                ));
            }
        })
    }

    /// Whether this side accepts connections (each one gets its own other side).
    pub(crate) fn listens(&self) -> bool {
        matches!(self, Spec::WsListen { .. } | Spec::TcpListen { .. } | Spec::UnixListen(_))
    }

    /// Whether this side carries WebSocket messages (else a byte stream).
    pub(crate) fn messages(&self) -> bool {
        matches!(self, Spec::WsClient(_) | Spec::WsListen { .. })
    }

    /// How the side is named in log lines and errors.
    pub(crate) fn name(&self) -> String {
        match self {
            Spec::WsClient(url) => url.to_string(),
            Spec::WsListen { host, port } => format!("ws-listen:{}", ws_common::net::format_host_port(host, *port)),
            Spec::Tcp { host, port } => format!("tcp:{}", ws_common::net::format_host_port(host, *port)),
            Spec::TcpListen { host, port } => format!("tcp-listen:{}", ws_common::net::format_host_port(host, *port)),
            Spec::Unix(p) => format!("unix:{}", p.display()),
            Spec::UnixListen(p) => format!("unix-listen:{}", p.display()),
            Spec::Exec(c) => format!("exec:{c}"),
            Spec::Stdio => "stdio".into(),
        }
    }

    /// The listening flags for a `-listen` side.
    pub(crate) fn listen_args(&self) -> Option<ws_common::net::ListenArgs> {
        let (host, port, unix) = match self {
            Spec::WsListen { host, port } | Spec::TcpListen { host, port } => (host.clone(), *port, None),
            Spec::UnixListen(p) => ("127.0.0.1".into(), 0, Some(p.clone())),
            _ => return None,
        };
        Some(ws_common::net::ListenArgs { host, port, ipv6: false, pidfile: None, unix })
    }
}

/// A byte side, open: its two directions, and the process behind it for `exec:`.
pub(crate) struct Bytes {
    pub(crate) read: Pin<Box<dyn AsyncRead>>,
    pub(crate) write: Pin<Box<dyn AsyncWrite>>,
    pub(crate) child: Option<smol::process::Child>,
}

impl Bytes {
    fn socket<S>(s: S) -> Bytes
    where
        S: AsyncRead + AsyncWrite + Clone + 'static,
    {
        Bytes { read: Box::pin(s.clone()), write: Box::pin(s), child: None }
    }

    /// Connects or starts a byte side (not a listening one).
    pub(crate) async fn open(spec: &Spec) -> std::io::Result<Bytes> {
        match spec {
            Spec::Tcp { host, port } => {
                let s = ws_common::net::TcpStream::connect_host(host, *port).await?;
                let _ = s.set_nodelay(true);
                Ok(Bytes::socket(s))
            }
            Spec::Unix(path) => Ok(Bytes::socket(ws_common::net::UnixStream::connect(path).await?)),
            Spec::Exec(command) => {
                let mut child = smol::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
                let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                    return Err(std::io::Error::other("no pipes to the program"));
                };
                Ok(Bytes { read: Box::pin(stdout), write: Box::pin(stdin), child: Some(child) })
            }
            Spec::Stdio => Ok(Bytes {
                read: Box::pin(smol::Unblock::new(std::io::stdin())),
                write: Box::pin(smol::Unblock::new(std::io::stdout())),
                child: None,
            }),
            _ => Err(std::io::Error::other(format!("{} is not a byte stream to open", spec.name()))),
        }
    }

    /// A connection accepted by a `tcp-listen` or `unix-listen` side.
    pub(crate) fn accepted(t: ws_common::net::Transport) -> Bytes {
        match t {
            ws_common::net::Transport::Tcp(s) => {
                let _ = s.set_nodelay(true);
                Bytes::socket(s)
            }
            ws_common::net::Transport::Unix(s) => Bytes::socket(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_parse_as_websocat_and_socat_write_them() {
        assert_eq!(Spec::parse("tcp:127.0.0.1:6379"), Ok(Spec::Tcp { host: "127.0.0.1".into(), port: 6379 }));
        assert_eq!(Spec::parse("ws-listen:0.0.0.0:8080"), Ok(Spec::WsListen { host: "0.0.0.0".into(), port: 8080 }));
        assert_eq!(Spec::parse("ws-l:8080"), Ok(Spec::WsListen { host: "127.0.0.1".into(), port: 8080 }));
        assert_eq!(Spec::parse("tcp-listen:[::1]:0"), Ok(Spec::TcpListen { host: "::1".into(), port: 0 }));
        assert_eq!(Spec::parse("unix:/run/x.sock"), Ok(Spec::Unix("/run/x.sock".into())));
        assert_eq!(Spec::parse("exec:cat -u"), Ok(Spec::Exec("cat -u".into())));
        assert_eq!(Spec::parse("stdio"), Ok(Spec::Stdio));
        assert!(matches!(Spec::parse("wss://example.com/x"), Ok(Spec::WsClient(_))));
        for bad in ["tcp:host", "tcp:host:http", "exec:", "unix:", "ftp://x", "nonsense", "stdio:x"] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
        assert!(Spec::parse("ws-listen:1").unwrap().listens());
        assert!(!Spec::parse("tcp:a:1").unwrap().messages());
    }
}
