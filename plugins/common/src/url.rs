//! URLs as users type them: `ws://`, `wss://` (and, for `curl`, `http://`, `https://`).

pub use url::Url;

use crate::CommonError;

/// Parses a WebSocket URL: scheme `ws` or `wss`, a host, an optional port.
pub fn parse_ws_url(raw: &str) -> Result<Url, CommonError> {
    let bad = |reason: &str| CommonError::BadUrl { url: raw.to_string(), reason: reason.to_string() };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "ws" | "wss" => {}
        other => return Err(bad(&format!("unsupported scheme '{other}' (expected ws:// or wss://)"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    Ok(url)
}

/// `host:port` to connect to (IPv6 literals without brackets, as `connect` wants them).
pub fn host_and_port(url: &Url) -> (String, u16) {
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
    matches!(url.scheme(), "wss" | "https")
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
