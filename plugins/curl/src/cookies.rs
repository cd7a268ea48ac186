//! The cookie engine of `-b`/`--cookie` and `-c`/`--cookie-jar`, by curl's rules, on the
//! `cookie_store` crate (RFC 6265 parsing, domain, path, secure and expiry rules):
//!
//! - `-b 'a=1; b=2'` (an argument with `=`) is sent as it is in every request's `Cookie`.
//! - `-b FILE` (no `=`) reads cookies from FILE: curl's Netscape format (the lines `-c`
//!   writes, `#HttpOnly_` prefix included) or `Set-Cookie:` header lines; a missing file is
//!   no error (curl's way of turning the engine on with `-b ''`).
//! - With the engine on (any `-b` or `-c`), cookies set by responses are kept and sent on to
//!   the requests that match them, through `-L` redirects too.
//! - `-c FILE` writes every unexpired cookie when the transfer ends, in the Netscape format
//!   curl reads (`-` for stdout); written to a temporary name and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use cookie_store::{CookieDomain, CookieExpiration, CookieStore};
use ws_common::url::Url;
use ws_plugin_api::Error;

use crate::args::{Args, code, fail};

/// The cookies of one `ws curl` run.
pub(crate) struct Jar {
    store: CookieStore,
    /// `-b NAME=VALUE…` strings, sent as they are.
    fixed: Vec<String>,
    /// `-c FILE`.
    save_to: Option<PathBuf>,
}

impl Jar {
    /// The engine, if `-b` or `-c` turns it on.
    pub(crate) fn from_args(args: &Args) -> Result<Option<Jar>, Error> {
        if args.cookie.is_empty() && args.cookie_jar.is_none() {
            return Ok(None);
        }
        let mut jar = Jar { store: CookieStore::new(), fixed: Vec::new(), save_to: args.cookie_jar.clone() };
        for b in &args.cookie {
            if b.contains('=') {
                jar.fixed.push(b.trim().to_string());
            } else if !b.is_empty() {
                jar.load(Path::new(b))?;
            }
        }
        Ok(Some(jar))
    }

    fn load(&mut self, path: &Path) -> Result<(), Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail(code::READ, format!("cannot read cookies from {}: {e}", path.display()))),
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        for line in text.lines() {
            if let Some(set) = line.strip_prefix("Set-Cookie:").or_else(|| line.strip_prefix("set-cookie:")) {
                // A header dump: no request URL to check it against but the cookie's own.
                if let Ok(raw) = cookie_store::RawCookie::parse(set.trim()) {
                    let host = raw.domain().unwrap_or("localhost").trim_start_matches('.').to_string();
                    if let Ok(url) = Url::parse(&format!("http://{host}{}", raw.path().unwrap_or("/"))) {
                        let _ = self.store.insert_raw(&raw, &url);
                    }
                }
                continue;
            }
            let (http_only, line) = match line.strip_prefix("#HttpOnly_") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let [domain, subdomains, path, secure, expires, name, value] = f[..] else { continue };
            let expires: i64 = expires.parse().unwrap_or(0);
            if expires != 0 && expires <= now {
                continue;
            }
            let host = domain.trim_start_matches('.');
            let mut set = format!("{name}={value}; Path={path}");
            if subdomains == "TRUE" {
                set.push_str(&format!("; Domain={host}"));
            }
            if expires != 0 {
                set.push_str(&format!("; Max-Age={}", expires - now));
            }
            let scheme = if secure == "TRUE" { "https" } else { "http" };
            if secure == "TRUE" {
                set.push_str("; Secure");
            }
            if http_only {
                set.push_str("; HttpOnly");
            }
            if let Ok(url) = Url::parse(&format!("{scheme}://{host}{path}")) {
                let _ = self.store.parse(&set, &url);
            }
        }
        Ok(())
    }

    /// The `Cookie` header for a request to `url`, if any cookie goes there.
    pub(crate) fn header(&self, url: &Url) -> Option<String> {
        let mut parts = self.fixed.clone();
        parts.extend(self.store.get_request_values(url).map(|(n, v)| format!("{n}={v}")));
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Keeps the cookies a response from `url` sets.
    pub(crate) fn take(&mut self, url: &Url, headers: &hyper::HeaderMap) {
        for v in headers.get_all(hyper::header::SET_COOKIE) {
            if let Ok(s) = v.to_str() {
                let _ = self.store.parse(s, url);
            }
        }
    }

    /// Writes `-c FILE`, if given.
    pub(crate) fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.save_to else { return Ok(()) };
        let mut out = String::from(
            "# Netscape HTTP Cookie File\n# https://curl.se/docs/http-cookies.html\n# This file was generated by ws curl! Edit at your own risk.\n\n",
        );
        for c in self.store.iter_unexpired() {
            let (domain, subdomains) = match &c.domain {
                CookieDomain::Suffix(d) => (format!(".{d}"), "TRUE"),
                CookieDomain::HostOnly(d) => (d.clone(), "FALSE"),
                _ => continue,
            };
            let expires = match &c.expires {
                CookieExpiration::AtUtc(t) => t.unix_timestamp(),
                CookieExpiration::SessionEnd => 0,
            };
            let prefix = if c.http_only().unwrap_or(false) { "#HttpOnly_" } else { "" };
            let secure = if c.secure().unwrap_or(false) { "TRUE" } else { "FALSE" };
            let path: &str = &c.path;
            out.push_str(&format!(
                "{prefix}{domain}\t{subdomains}\t{path}\t{secure}\t{expires}\t{}\t{}\n",
                c.name(),
                c.value()
            ));
        }
        let written = if path.as_os_str() == "-" {
            std::io::stdout().write_all(out.as_bytes())
        } else {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            ws_common::transfer::partial_file(dir, ".ws-cookies-").and_then(|mut tmp| {
                tmp.write_all(out.as_bytes())?;
                tmp.persist(path).map(drop).map_err(|e| e.error)
            })
        };
        written.map_err(|e| fail(code::WRITE, format!("cannot write cookies to {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_netscape_file_round_trips_and_domain_rules_hold() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jar");
        std::fs::write(
            &file,
            "# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tFALSE\t0\twide\t1\n#HttpOnly_api.example.com\tFALSE\t/v1\tTRUE\t4102444800\tnarrow\t2\nold.example.com\tFALSE\t/\tFALSE\t1\tgone\t3\n",
        )
        .unwrap();
        let mut jar =
            Jar { store: CookieStore::new(), fixed: vec!["fixed=0".into()], save_to: Some(dir.path().join("out")) };
        jar.load(&file).unwrap();
        let at = |u: &str| jar.header(&Url::parse(u).unwrap()).unwrap_or_default();
        assert_eq!(at("http://www.example.com/"), "fixed=0; wide=1");
        assert!(at("https://api.example.com/v1/x").contains("narrow=2"));
        assert!(!at("http://api.example.com/v1/x").contains("narrow"), "a secure cookie went over http");
        assert!(!at("https://api.example.com/v2").contains("narrow"), "the path rule did not hold");
        assert!(!at("http://old.example.com/").contains("gone"), "an expired cookie was loaded");
        jar.save().unwrap();
        let written = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert!(written.contains(".example.com\tTRUE\t/\tFALSE\t0\twide\t1\n"), "{written}");
        assert!(written.contains("#HttpOnly_api.example.com\tFALSE\t/v1\tTRUE\t4102444800\tnarrow\t2\n"), "{written}");
    }
}
