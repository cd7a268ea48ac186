//! What the everyday flags add around every response: who may fetch (`--cors`), who may
//! read (`--auth`, `--auth-file`), headers of the operator's (`-H`, `--cache-control`), the
//! single-page app's fallback (`--spa`, `--fallback`) and the access log's format.
//!
//! - `--cors [ORIGIN]`: `Access-Control-Allow-Origin` (default `*`; `Vary: Origin` with a
//!   named origin) on every response, and a preflight (`OPTIONS` with
//!   `Access-Control-Request-Method`) answered 204 with the methods served and the headers
//!   asked for. A preflight carries no credentials, so it passes `--auth`.
//! - `--auth user:pass` (repeatable) and `--auth-file FILE` (htpasswd: bcrypt, SHA, apr1-MD5,
//!   crypt; via `htpasswd-verify`): anything else gets 401 with
//!   `WWW-Authenticate: Basic realm="ws httpd"`. `--auth` passwords are compared in constant
//!   time. A hash check (bcrypt takes tens of milliseconds) runs on a blocking-task thread,
//!   never on the server's, and a header that passed is remembered (a bounded set) so the
//!   check runs once per client, not per request.
//! - `--spa` serves `index.html` (or `--fallback FILE`) for a GET of a missing path that
//!   accepts HTML; a missing asset (a script, an image) still gets 404.
//! - `--log-format combined`: the access log in Apache's combined format, on stdout.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ws_plugin_api::Error;

use crate::responses::{Body, empty, full};

/// The flags of this module.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Allow cross-origin requests from ORIGIN (default: any, `*`); answers preflights
    #[arg(long, value_name = "ORIGIN", num_args = 0..=1, default_missing_value = "*")]
    cors: Option<String>,
    /// Require HTTP basic auth with this user:password (repeatable)
    #[arg(long, value_name = "USER:PASS")]
    auth: Vec<String>,
    /// Require HTTP basic auth checked against an htpasswd FILE (bcrypt, SHA, apr1, crypt)
    #[arg(long = "auth-file", value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Add this header to every response (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Cache-Control for every response
    #[arg(long = "cache-control", value_name = "VALUE")]
    cache_control: Option<String>,
    /// Single-page app: a missing path that asks for HTML gets index.html
    #[arg(long)]
    spa: bool,
    /// Like --spa, with this file (relative to --root) instead of index.html
    #[arg(long, value_name = "FILE")]
    fallback: Option<String>,
    /// Access log format: ws (the reference's lines) or combined (Apache's)
    #[arg(long = "log-format", value_name = "FORMAT", default_value = "ws", value_parser = ["ws", "combined"])]
    pub(crate) log_format: String,
}

/// How many accepted Authorization values are remembered.
const REMEMBERED: usize = 1024;

/// The flags, checked and ready.
pub(crate) struct Policy {
    cors: Option<HeaderValue>,
    methods: HeaderValue,
    users: Vec<(String, String)>,
    htpasswd: Option<Arc<htpasswd_verify::Htpasswd<'static>>>,
    accepted: RefCell<HashSet<String>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) fallback: Option<String>,
    pub(crate) combined_log: bool,
}

impl Policy {
    /// `uploads`: PUT and POST are served too (the preflight says so).
    pub(crate) fn new(a: &PolicyArgs, uploads: bool) -> Result<Policy, Error> {
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| Error::usage(format!("{what}: '{v}' is not a header value")))
        };
        let cors = a.cors.as_deref().map(|o| value(o, "--cors")).transpose()?;
        let mut users = Vec::new();
        for pair in &a.auth {
            let (u, p) =
                pair.split_once(':').ok_or_else(|| Error::usage(format!("--auth '{pair}' is not user:pass")))?;
            users.push((u.to_string(), p.to_string()));
        }
        let htpasswd = match &a.auth_file {
            None => None,
            Some(path) => Some(Arc::new(load_htpasswd(path)?)),
        };
        let mut headers = Vec::new();
        for h in &a.headers {
            let (k, v) = h.split_once(':').ok_or_else(|| Error::usage(format!("-H '{h}' is not 'Name: value'")))?;
            let name = HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| Error::usage(format!("-H: '{}' is not a header name", k.trim())))?;
            headers.push((name, value(v.trim(), "-H")?));
        }
        if let Some(cc) = &a.cache_control {
            headers.push((header::CACHE_CONTROL, value(cc, "--cache-control")?));
        }
        let fallback = a.fallback.clone().or_else(|| a.spa.then(|| "index.html".to_string()));
        let methods = if uploads { "GET, HEAD, PUT, POST, OPTIONS" } else { "GET, HEAD, OPTIONS" };
        Ok(Policy {
            cors,
            methods: HeaderValue::from_static(methods),
            users,
            htpasswd,
            accepted: RefCell::default(),
            headers,
            fallback,
            combined_log: a.log_format == "combined",
        })
    }

    /// A CORS preflight, answered here when `--cors` is on.
    pub(crate) fn preflight(&self, req: &Request<hyper::body::Incoming>) -> Option<Response<Body>> {
        let origin = self.cors.as_ref()?;
        if req.method() != Method::OPTIONS || !req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut r = empty(StatusCode::NO_CONTENT);
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        if origin != "*" {
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        Some(r)
    }

    /// Whether requests need a user and password.
    pub(crate) fn has_auth(&self) -> bool {
        !self.users.is_empty() || self.htpasswd.is_some()
    }

    /// `Ok(user)` when the request may be served (`None` without auth), else the 401 to send.
    pub(crate) async fn authorize(
        &self,
        req: &Request<hyper::body::Incoming>,
    ) -> Result<Option<String>, Response<Body>> {
        if !self.has_auth() {
            return Ok(None);
        }
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let decoded = given
            .strip_prefix("Basic ")
            .and_then(|b| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(unauthorized());
        };
        if self.accepted.borrow().contains(given) {
            return Ok(Some(user.to_string()));
        }
        let mut ok = false;
        for (u, p) in &self.users {
            use subtle::ConstantTimeEq;
            let same_user: bool = u.as_bytes().ct_eq(user.as_bytes()).into();
            let same_pass: bool = p.as_bytes().ct_eq(pass.as_bytes()).into();
            ok |= same_user & same_pass;
        }
        if !ok && let Some(file) = &self.htpasswd {
            let (file, user2, pass2) = (file.clone(), user.to_string(), pass.to_string());
            // A bad hash in the file must not take the server down: the library unwraps.
            ok = smol::unblock(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| file.check(&user2, &pass2))).unwrap_or(false)
            })
            .await;
        }
        if !ok {
            return Err(unauthorized());
        }
        let mut accepted = self.accepted.borrow_mut();
        if accepted.len() >= REMEMBERED {
            accepted.clear();
        }
        accepted.insert(given.to_string());
        Ok(Some(user.to_string()))
    }

    /// The headers every response gets: CORS, `-H`, `--cache-control`.
    pub(crate) fn decorate(&self, resp: &mut Response<Body>) {
        let h = resp.headers_mut();
        if let Some(origin) = &self.cors {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if origin != "*" {
                // One Vary, with what the gzip choice already put there.
                let vary = match h.get(header::VARY).and_then(|v| v.to_str().ok()) {
                    Some(v) => {
                        HeaderValue::from_str(&format!("{v}, Origin")).unwrap_or(HeaderValue::from_static("Origin"))
                    }
                    None => HeaderValue::from_static("Origin"),
                };
                h.insert(header::VARY, vary);
            }
        }
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
    }

    /// Whether a 404 for `req` should be the single-page app's fallback instead.
    pub(crate) fn wants_fallback(&self, req: &Request<hyper::body::Incoming>) -> Option<&str> {
        let fallback = self.fallback.as_deref()?;
        let html = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"));
        (html && (req.method() == Method::GET || req.method() == Method::HEAD)).then_some(fallback)
    }
}

fn unauthorized() -> Response<Body> {
    let mut r = full(StatusCode::UNAUTHORIZED, "unauthorized\n");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ws httpd\""));
    r
}

/// Reads an htpasswd file, refusing lines the library would choke on (it slices and unwraps).
fn load_htpasswd(path: &std::path::Path) -> Result<htpasswd_verify::Htpasswd<'static>, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::usage(format!("--auth-file {}: {e}", path.display())))?;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
        let bad = |why: &str| Error::usage(format!("--auth-file {}:{}: {why}", path.display(), i + 1));
        let (_, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
        let ok = match hash {
            h if h.starts_with("$apr1$") => h.len() > 6 + 8 + 1 && h.as_bytes()[14] == b'$',
            h if h.starts_with("$2") => h.len() == 60,
            h if h.starts_with("{SHA}") => h.len() > 5,
            h => h.len() == 13,
        };
        if !ok {
            return Err(bad("not a hash htpasswd makes (bcrypt, SHA, apr1 or crypt)"));
        }
        // bcrypt's $2a$ and $2b$ (Python's bcrypt, mkpasswd) are the library's $2y$.
        let (user, hash) = line.split_once(':').expect("checked above");
        let hash = match hash.get(..4) {
            Some("$2a$" | "$2b$") => format!("$2y${}", &hash[4..]),
            _ => hash.to_string(),
        };
        lines.push(format!("{user}:{hash}"));
    }
    Ok(htpasswd_verify::Htpasswd::new_owned(&lines.join("\n")))
}
