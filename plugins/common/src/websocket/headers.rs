//! Parsing `-H 'Name: value'`, and reading header lists (`(name, value)` pairs, names in any
//! case) as the handshakes receive them.
//!
//! Unlike the reference, which splits at the *last* colon and keeps the value's leading space
//! (so `Host: a:80` broke and `Authorization: x` went out as ` x`), we split at the *first*
//! colon and trim the value, as curl does.

use crate::CommonError;

/// Parses one `Name: value` header. The name must be a valid HTTP token.
pub fn parse_header(raw: &str) -> Result<(String, String), CommonError> {
    let (name, value) = raw.split_once(':').ok_or_else(|| CommonError::BadHeader(raw.to_string()))?;
    let name = name.trim();
    let token_ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token_ok || value.contains(['\r', '\n']) {
        return Err(CommonError::BadHeader(raw.to_string()));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Parses every `-H` value given.
pub fn parse_headers(raw: &[String]) -> Result<Vec<(String, String)>, CommonError> {
    raw.iter().map(|h| parse_header(h)).collect()
}

/// Every value of the header `name` (in any case), in the order received.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// Whether a comma-separated value of the header `name` is `token` (both in any case), as
/// `Connection: keep-alive, Upgrade` has `upgrade`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    values(headers, name).iter().any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_colon_and_trims() {
        assert_eq!(parse_header("Authorization: secret").unwrap(), ("Authorization".into(), "secret".into()));
        assert_eq!(parse_header("Host: a:80").unwrap(), ("Host".into(), "a:80".into()));
        assert_eq!(parse_header("X-Empty:").unwrap(), ("X-Empty".into(), "".into()));
    }

    #[test]
    fn reads_values_and_tokens_in_any_case() {
        let h: Vec<(String, String)> = [("connection", "keep-alive, Upgrade"), ("X-A", "1"), ("x-a", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(values(&h, "X-a"), ["1", "2"]);
        assert!(has_token(&h, "Connection", "upgrade"));
        assert!(!has_token(&h, "Connection", "close"));
        assert!(!has_token(&h, "Upgrade", "websocket"));
    }

    #[test]
    fn refuses_what_is_not_a_header() {
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("X: a\r\nInjected: b").is_err());
    }
}
