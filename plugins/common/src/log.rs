//! The log format of IXWebSocket's `ws`, kept because users grep it:
//! `[YYYY-MM-DD HH:MM:SS.mmm] [level] message`, local time, one line per call.
//! `error` lines go to stderr, everything else to stdout. `-q` hides `info`, `-v` shows `debug`.
//!
//! Writes ignore errors: a closed stdout (`ws … | head`) must not turn logging into a panic.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the lowest level that is printed.
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Sets the level from the usual `-v` / `-q` flags (`-v` wins).
pub fn set_verbosity(verbose: bool, quiet: bool) {
    set_level(if verbose {
        Level::Debug
    } else if quiet {
        Level::Warning
    } else {
        Level::Info
    });
}

/// Whether a line of `level` would be printed.
pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

/// The `[YYYY-MM-DD HH:MM:SS.mmm]` stamp of now, in local time.
pub fn timestamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Formats one log line (without the newline).
pub fn format_line(level: Level, args: Arguments<'_>) -> String {
    format!("[{}] [{}] {}", timestamp(), level.as_str(), args)
}

/// Writes one line at `level`, if enabled. Use the macros instead.
pub fn write(level: Level, args: Arguments<'_>) {
    write_forced(level, args, false);
}

/// Writes one line whatever the level filter says (the `Listening on` ready line, which
/// test harnesses and scripts wait for, is printed even with `-q`).
pub fn write_forced(level: Level, args: Arguments<'_>, force: bool) {
    if !force && !enabled(level) {
        return;
    }
    let mut line = format_line(level, args);
    line.push('\n');
    if level == Level::Error {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// Prints a plain line to stdout (no stamp), ignoring a closed pipe.
pub fn plain(args: Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }
/// Logs at info level.
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
/// Logs at warning level.
#[macro_export]
macro_rules! warning { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warning, format_args!($($t)*)) } }
/// Logs at error level, to stderr.
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_reference_shape() {
        let line = format_line(Level::Info, format_args!("Listening on {}", "127.0.0.1:8008"));
        // [2020-12-17 22:35:06.192] [info] Listening on 127.0.0.1:8008
        let b = line.as_bytes();
        assert_eq!(b[0], b'[');
        assert_eq!(&line[24..], "] [info] Listening on 127.0.0.1:8008");
        assert_eq!(b[5], b'-');
        assert_eq!(b[11], b' ');
        assert_eq!(b[20], b'.');
    }

    #[test]
    fn verbosity_flags_set_the_filter() {
        set_verbosity(false, true);
        assert!(!enabled(Level::Info));
        assert!(enabled(Level::Warning));
        set_verbosity(true, true);
        assert!(enabled(Level::Debug));
        set_verbosity(false, false);
        assert!(enabled(Level::Info) && !enabled(Level::Debug));
    }
}
