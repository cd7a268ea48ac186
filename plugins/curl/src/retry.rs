//! `--retry N` by curl's rules: a transfer that fails in a way that may pass (a timeout,
//! HTTP 408, 429, 500, 502, 503 or 504; a refused connection with `--retry-connrefused`;
//! anything with `--retry-all-errors`) is tried again, up to N more times, after
//! `--retry-delay` seconds or else 1 s doubling to 10 min (a `Retry-After` in seconds wins),
//! never past `--retry-max-time`. Each retry says why on stderr, in curl's words
//! (`Warning: Problem : HTTP error. Will retry in 1 seconds. 2 retries left.`), unless `-s`.
//! The last attempt's response is the one delivered, as in curl.

use std::time::{Duration, Instant};

use ws_plugin_api::Error;

use crate::args::{Args, code};

/// curl's longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Why an attempt may be repeated, in curl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    All,
    Timeout,
    ConnectionRefused,
    Http,
}

impl Why {
    fn words(self) -> &'static str {
        match self {
            Why::All => "(retrying all errors)",
            Why::Timeout => ": timeout",
            Why::ConnectionRefused => ": connection refused",
            Why::Http => ": HTTP error",
        }
    }
}

/// Whether an HTTP status is one curl retries.
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// What is left of `--retry` in this run.
#[derive(Debug)]
pub(crate) struct Policy {
    left: u32,
    delay: Option<Duration>,
    max_time: Option<Duration>,
    all: bool,
    connrefused: bool,
    silent: bool,
    started: Instant,
    backoff: Duration,
}

impl Policy {
    pub(crate) fn from_args(args: &Args) -> Policy {
        let secs = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        Policy {
            left: args.retry,
            delay: secs(args.retry_delay),
            max_time: secs(args.retry_max_time),
            all: args.retry_all_errors,
            connrefused: args.retry_connrefused,
            silent: args.silent,
            started: Instant::now(),
            backoff: Duration::from_secs(1),
        }
    }

    /// After a response with `status` (and its `Retry-After`): the wait before the next
    /// attempt, when curl retries that status and retries are left.
    pub(crate) fn for_status(
        &mut self,
        status: u16,
        retry_after: Option<&hyper::header::HeaderValue>,
    ) -> Option<Duration> {
        if self.left == 0 || !transient_status(status) {
            return None;
        }
        let after = retry_after.and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok()).map(Duration::from_secs);
        self.next(if self.all { Why::All } else { Why::Http }, after)
    }

    /// Why a failed attempt may be repeated, if it may.
    pub(crate) fn for_error(&self, e: &Error) -> Option<Why> {
        if self.left == 0 {
            return None;
        }
        let refused = e.exit_code() == code::CONNECT && e.message().is_some_and(|m| m.contains("refused"));
        match e.exit_code() {
            _ if self.all => Some(Why::All),
            code::TIMEOUT => Some(Why::Timeout),
            _ if refused && self.connrefused => Some(Why::ConnectionRefused),
            _ => None,
        }
    }

    /// Takes a retry: says so and returns how long to wait first, or `None` when
    /// `--retry-max-time` would pass (the last failure then stands).
    pub(crate) fn next(&mut self, why: Why, retry_after: Option<Duration>) -> Option<Duration> {
        let wait = match (retry_after, self.delay) {
            (Some(after), _) => after,
            (None, Some(fixed)) => fixed,
            (None, None) => {
                let wait = self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        if self.max_time.is_some_and(|max| self.started.elapsed() + wait > max) {
            return None;
        }
        // curl counts the retries left before taking this one.
        if !self.silent {
            let text = format!(
                "Problem {}. Will retry in {} seconds. {} retries left.\n",
                why.words(),
                wait.as_secs(),
                self.left
            );
            eprint!("{}", warning(&text));
        }
        self.left -= 1;
        Some(wait)
    }
}

/// A warning as curl prints it: `Warning: ` before every line, the text cut at the last
/// blank within 70 columns (curl's `voutf`), the blank kept at the end of the line.
fn warning(text: &str) -> String {
    const PREFIX: &str = "Warning: ";
    const WIDTH: usize = 79 - PREFIX.len();
    let mut out = String::new();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        out.push_str(PREFIX);
        if rest.len() > WIDTH {
            let mut cut = WIDTH - 1;
            while cut > 0 && !matches!(rest[cut], b' ' | b'\t') {
                cut -= 1;
            }
            if cut == 0 {
                cut = WIDTH - 1;
            }
            out.push_str(&String::from_utf8_lossy(&rest[..=cut]));
            out.push('\n');
            rest = &rest[cut + 1..];
        } else {
            out.push_str(&String::from_utf8_lossy(rest));
            rest = &[];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_wrap_as_curls() {
        assert_eq!(warning("short\n"), "Warning: short\n");
        let long = "Problem (retrying all errors). Will retry in 1 seconds. 2 retries left.\n";
        assert_eq!(
            warning(long),
            "Warning: Problem (retrying all errors). Will retry in 1 seconds. 2 retries \nWarning: left.\n"
        );
    }

    #[test]
    fn curls_transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(transient_status(s), "{s}");
        }
        for s in [200, 301, 400, 401, 404, 501] {
            assert!(!transient_status(s), "{s}");
        }
    }
}
