//! Progress of a long transfer (`send`'s upload, `curl`'s download to a file): a bar on
//! stderr when stderr is a terminal, otherwise, when the caller wants it, a line per 10 %
//! so that logs and scripts still see the transfer move.

use std::cell::Cell;
use std::io::IsTerminal;

/// Called with (bytes done, total) at each 10 % when no bar is drawn.
pub type LogFn = Box<dyn Fn(u64, u64)>;

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    next_log: Cell<u64>,
    log: Option<LogFn>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("total", &self.total).field("bar", &self.bar.is_some()).finish()
    }
}

impl Progress {
    /// `total`: the size when known (a bar with ETA), else bytes and rate only. `bar`:
    /// whether a bar may be drawn at all (not with `-s`).
    pub fn new(total: Option<u64>, bar: bool, log: Option<LogFn>) -> Self {
        let bar = (bar && std::io::stderr().is_terminal()).then(|| {
            let (b, template) = match total {
                Some(t) => {
                    (indicatif::ProgressBar::new(t), "{bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} ETA {eta}")
                }
                None => (indicatif::ProgressBar::no_length(), "{spinner} {bytes} {bytes_per_sec} {elapsed}"),
            };
            b.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let first = total.map_or(u64::MAX, |t| t / 10);
        Progress { bar, total, next_log: Cell::new(first), log }
    }

    pub fn set(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        if let (Some(log), Some(total)) = (&self.log, self.total)
            && total > 0
            && done >= self.next_log.get()
            && done < total
        {
            log(done, total);
            self.next_log.set(done + total / 10);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
