//! What `-L` follows, and what it carries along, by curl's rules.
//!
//! - Only `http` and `https` are followed: a `Location: gopher://host:port/` would otherwise
//!   make `ws curl` speak HTTP to whatever listens there (curl: exit 1, "Protocol … not
//!   supported").
//! - Credentials (`-u`, and `Authorization` and `Cookie` given with `-H`) go only to the
//!   origin (scheme, host and port) the user named, unless `--location-trusted`: a redirect
//!   to another host or port must not receive them (curl's CVE-2018-1000007 and
//!   CVE-2022-27776). A redirect back to the first origin gets them again, as in curl.
//! - 303, and 301/302 after a POST, go on as GET without a body.

use hyper::{Method, StatusCode};
use ws_common::url::Url;
use ws_plugin_api::Error;

use crate::args::{code, fail};

/// The next hop of a redirect.
#[derive(Debug)]
pub(crate) struct Hop {
    pub(crate) url: Url,
    /// The method changes to GET (HEAD stays HEAD) and the body is dropped.
    pub(crate) to_get: bool,
}

/// Where a redirect from `from` with `location` leads, or the error curl gives.
pub(crate) fn follow(from: &Url, location: &str, status: StatusCode, method: &Method) -> Result<Hop, Error> {
    let url = from.join(location).map_err(|e| fail(code::URL, format!("bad redirect to '{location}': {e}")))?;
    check_scheme(&url)?;
    let to_get = status == StatusCode::SEE_OTHER
        || (*method == Method::POST && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND));
    Ok(Hop { url, to_get })
}

/// `http` and `https` only (curl's exit 1 for anything else).
pub(crate) fn check_scheme(url: &Url) -> Result<(), Error> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(fail(code::UNSUPPORTED_PROTOCOL, format!("Protocol \"{other}\" not supported"))),
    }
}

/// Whether two URLs share scheme, host and port: credentials given for one may go to the other.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether a header given with `-H` is a credential that stays with its origin.
pub(crate) fn is_credential(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let a = url("http://a.test/x");
        assert!(same_origin(&a, &url("http://a.test:80/y?z")));
        assert!(!same_origin(&a, &url("http://b.test/x")));
        assert!(!same_origin(&a, &url("http://a.test:8080/x")));
        assert!(!same_origin(&a, &url("https://a.test/x")));
    }

    #[test]
    fn only_http_and_https_are_followed() {
        let from = url("http://a.test/");
        let get = Method::GET;
        assert!(follow(&from, "gopher://127.0.0.1:70/", StatusCode::FOUND, &get).is_err());
        assert!(follow(&from, "file:///etc/passwd", StatusCode::FOUND, &get).is_err());
        let hop = follow(&from, "/next", StatusCode::FOUND, &get).unwrap();
        assert_eq!(hop.url.as_str(), "http://a.test/next");
        assert!(!hop.to_get);
        assert!(follow(&from, "https://b.test/", StatusCode::SEE_OTHER, &Method::PUT).unwrap().to_get);
        assert!(follow(&from, "/", StatusCode::MOVED_PERMANENTLY, &Method::POST).unwrap().to_get);
        assert!(!follow(&from, "/", StatusCode::TEMPORARY_REDIRECT, &Method::POST).unwrap().to_get);
    }
}
