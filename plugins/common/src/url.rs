//! URLs as users type them: `ws://`, `wss://` (and, for `curl`, `http://`, `https://`),
//! and a WebSocket server on a Unix socket as Node's `ws` and `ws+unix` clients spell it:
//! `ws+unix:///run/app.sock:/chat?room=1` is the socket `/run/app.sock`, the request
//! `/chat?room=1` (`/` when there is no `:`), and `Host: localhost`; `wss+unix://` runs TLS
//! over the socket.

use std::path::PathBuf;

pub use url::Url;

use crate::CommonError;

/// Parses a WebSocket URL: scheme `ws` or `wss` with a host and an optional port, or
/// `ws+unix`/`wss+unix` with a socket path.
pub fn parse_ws_url(raw: &str) -> Result<Url, CommonError> {
    let bad = |reason: &str| CommonError::BadUrl { url: raw.to_string(), reason: reason.to_string() };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "ws" | "wss" => {}
        "ws+unix" | "wss+unix" => {
            return match unix_socket(&url) {
                Some(_) => Ok(url),
                None => Err(bad("missing socket path (ws+unix:///path/to.sock:/request)")),
            };
        }
        other => return Err(bad(&format!("unsupported scheme '{other}' (expected ws:// or wss://)"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    Ok(url)
}

/// Whether the URL names a Unix socket (`ws+unix:`, `wss+unix:`).
fn is_unix(url: &Url) -> bool {
    url.scheme().ends_with("+unix")
}

/// The socket path and the request path of a `+unix` URL, split at the first `:`.
fn unix_parts(url: &Url) -> Option<(&str, &str)> {
    if !is_unix(url) {
        return None;
    }
    let path = url.path();
    Some(path.split_once(':').unwrap_or((path, "")))
}

/// The Unix socket a `ws+unix:`/`wss+unix:` URL names (percent-decoded), if it names one.
pub fn unix_socket(url: &Url) -> Option<PathBuf> {
    let (socket, _) = unix_parts(url)?;
    let decoded = percent_encoding::percent_decode_str(socket).collect::<Vec<u8>>();
    use std::os::unix::ffi::OsStringExt;
    (!decoded.is_empty()).then(|| PathBuf::from(std::ffi::OsString::from_vec(decoded)))
}

/// The request's path, without the query (`/` at least).
pub fn request_path(url: &Url) -> String {
    match unix_parts(url).map_or(url.path(), |(_, path)| path) {
        "" => "/".to_string(),
        path if !path.starts_with('/') => format!("/{path}"),
        path => path.to_string(),
    }
}

/// The request target: path and query.
pub fn request_target(url: &Url) -> String {
    let mut target = request_path(url);
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// `host:port` to connect to (IPv6 literals without brackets, as `connect` wants them); for a
/// Unix socket, `localhost` and the scheme's default port (what its `Host` header says).
pub fn host_and_port(url: &Url) -> (String, u16) {
    if is_unix(url) {
        return ("localhost".into(), if is_tls(url) { 443 } else { 80 });
    }
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(match url.scheme() {
        "wss" | "https" => 443,
        _ => 80,
    });
    (host, port)
}

/// The `Host` header value for `url`: the host (IPv6 bracketed), with the port only when it
/// is not the scheme's default.
pub fn host_header(url: &Url) -> String {
    let (host, port) = host_and_port(url);
    let default_port = if is_tls(url) { 443 } else { 80 };
    match (host.contains(':'), port == default_port) {
        (true, true) => format!("[{host}]"),
        (false, true) => host,
        _ => crate::net::format_host_port(&host, port),
    }
}

/// Whether the URL asks for TLS.
pub fn is_tls(url: &Url) -> bool {
    matches!(url.scheme(), "wss" | "https" | "wss+unix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ws_and_wss_only() {
        assert!(parse_ws_url("ws://127.0.0.1:8008/path?q=1").is_ok());
        assert!(parse_ws_url("wss://localhost").is_ok());
        let e = parse_ws_url("http://x").unwrap_err().to_string();
        assert!(e.contains("unsupported scheme 'http'"), "{e}");
        assert!(parse_ws_url("not a url").is_err());
    }

    #[test]
    fn unix_urls_name_a_socket_and_a_request() {
        let u = parse_ws_url("ws+unix:///run/app.sock:/chat?room=1").unwrap();
        assert_eq!(unix_socket(&u).unwrap(), PathBuf::from("/run/app.sock"));
        assert_eq!(request_target(&u), "/chat?room=1");
        assert_eq!(host_header(&u), "localhost");
        assert!(!is_tls(&u));
        let u = parse_ws_url("wss+unix:///tmp/a%20b.sock").unwrap();
        assert_eq!(unix_socket(&u).unwrap(), PathBuf::from("/tmp/a b.sock"));
        assert_eq!(request_target(&u), "/");
        assert!(is_tls(&u));
        assert_eq!(host_header(&u), "localhost");
        let u = parse_ws_url("ws+unix:relative.sock:x").unwrap();
        assert_eq!(unix_socket(&u).unwrap(), PathBuf::from("relative.sock"));
        assert_eq!(request_target(&u), "/x");
        let e = parse_ws_url("ws+unix://").unwrap_err().to_string();
        assert!(e.contains("missing socket path"), "{e}");
        assert_eq!(unix_socket(&parse_ws_url("ws://h/a:b").unwrap()), None);
        assert_eq!(request_target(&parse_ws_url("ws://h/a:b?q").unwrap()), "/a:b?q");
        assert_eq!(request_target(&parse_ws_url("ws://h").unwrap()), "/");
    }

    #[test]
    fn host_header_omits_default_ports_and_brackets_ipv6() {
        let h = |u: &str| host_header(&Url::parse(u).unwrap());
        assert_eq!(h("ws://a.example/"), "a.example");
        assert_eq!(h("https://a.example:443/"), "a.example");
        assert_eq!(h("http://a.example:8080/"), "a.example:8080");
        assert_eq!(h("ws://[::1]/"), "[::1]");
        assert_eq!(h("wss://[::1]:9443/"), "[::1]:9443");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(host_and_port(&parse_ws_url("ws://h").unwrap()), ("h".into(), 80));
        assert_eq!(host_and_port(&parse_ws_url("wss://h").unwrap()), ("h".into(), 443));
        assert_eq!(host_and_port(&parse_ws_url("ws://[::1]:9/").unwrap()), ("::1".into(), 9));
    }
}
