//! The log format of IXWebSocket's `ws`, kept because users grep it:
//! `[YYYY-MM-DD HH:MM:SS.mmm] [level] message`, local time, one line per call.
//! `error` lines go to stderr, everything else to stdout. `-q` hides `info`, `-v` shows `debug`.
//!
//! Writes ignore errors: a closed stdout (`ws … | head`) must not turn logging into a panic.
//!
//! Servers log in the background ([`background`]): their lines go to a bounded queue that a
//! thread of its own writes out, so a log output nobody reads (`ws echo_server | less`,
//! paused) blocks that thread and never the executor serving every client. Past
//! [`QUEUE_BYTES`] lines are dropped and counted, and the count is written once the output
//! takes lines again. Clients write directly: their output is their result, never dropped.

use std::collections::VecDeque;
use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

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

/// Formats one log line (without the newline). Control characters in it (from the network:
/// a close reason, a header, a file name) are escaped, so that a line is one line and
/// nothing a peer sends can move a terminal's cursor or forge another line.
pub fn format_line(level: Level, args: Arguments<'_>) -> String {
    let message = std::fmt::format(args);
    format!("[{}] [{}] {}", timestamp(), level.as_str(), escape_controls(&message, false))
}

/// `s` with its control characters (C0, DEL and C1: CR, ESC, BEL, the OSC and CSI
/// introducers, …) written as escapes (`\r`, `\x1b`, `\u{9b}`); tabs stay, and newlines
/// too when `keep_newlines`. For text from the network on its way to a terminal.
pub fn escape_controls(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t' && !(keep_newlines && c == '\n');
    if !s.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
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
    write_stamped(level, args, if level == Level::Error { Dest::Stderr } else { Dest::Stdout });
}

/// A stamped line to `dest`, or to the `--logfile` when there is one.
fn write_stamped(level: Level, args: Arguments<'_>, dest: Dest) {
    let mut line = format_line(level, args);
    line.push('\n');
    emit(log_dest(dest), line.into_bytes());
}

/// Where a stamped log line meant for `dest` goes: the `--logfile` when there is one.
fn log_dest(dest: Dest) -> Dest {
    if LOGFILE.get().is_some() { Dest::File } else { dest }
}

/// Where a finished line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Stdout,
    Stderr,
    /// The `--logfile`.
    File,
}

static LOGFILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// From now on every stamped log line, of every level, goes to `file` instead of stdout and
/// stderr (`--logfile`, as the reference). Plain output (a client's messages) is not a log
/// line and stays where it was. Each line is one `write` to an unbuffered file (by the
/// writer thread when [`background`] is on), so lines are never interleaved and nothing
/// written is lost when the process is killed.
pub fn to_file(file: std::fs::File) {
    let _ = LOGFILE.set(Mutex::new(file));
}

/// An info line about the session rather than its data (a closing line): on stdout at a
/// terminal, as the reference prints it; on stderr when stdout is not a terminal, where
/// stdout carries what a script reads.
pub fn notice(args: Arguments<'_>) {
    use std::io::IsTerminal;
    if !enabled(Level::Info) {
        return;
    }
    write_stamped(Level::Info, args, if std::io::stdout().is_terminal() { Dest::Stdout } else { Dest::Stderr });
}

/// Prints a plain line to stdout (no stamp), ignoring a closed pipe.
pub fn plain(args: Arguments<'_>) {
    let mut line = std::fmt::format(args);
    line.push('\n');
    emit(Dest::Stdout, line.into_bytes());
}

static ALL_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on every line (stamped or [`plain`]) goes to stderr: for a client whose stdout
/// carries its data (`ws connect URL | jq .`).
pub fn all_to_stderr() {
    ALL_TO_STDERR.store(true, Ordering::Relaxed);
}

/// Writes a finished line to stderr or stdout: above the prompt while a line editor owns
/// the terminal ([`print_above_prompt`]), queued when [`background`] is on.
fn emit(dest: Dest, line: Vec<u8>) {
    let dest = if dest == Dest::Stdout && ALL_TO_STDERR.load(Ordering::Relaxed) { Dest::Stderr } else { dest };
    let line = match TERMINAL.get() {
        Some(t) if dest == Dest::Stdout || (dest == Dest::Stderr && t.stderr) => match t.print(line) {
            Ok(()) => return,
            Err(line) => line,
        },
        _ => line,
    };
    if let Some(q) = QUEUE.get() {
        q.push(dest, line);
    } else {
        write_now(dest, &line);
    }
}

fn write_now(dest: Dest, line: &[u8]) {
    match dest {
        Dest::Stderr => {
            let _ = std::io::stderr().lock().write_all(line);
        }
        Dest::Stdout => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line);
            let _ = out.flush();
        }
        Dest::File => {
            if let Some(f) = LOGFILE.get() {
                let _ = f.lock().unwrap_or_else(|e| e.into_inner()).write_all(line);
            }
        }
    }
}

/// Where lines go while a line editor (reedline) owns the terminal: its external printer,
/// which prints them above the prompt and repaints it. Written directly, they landed in the
/// middle of the prompt (a staircase) and vanished at the next repaint.
#[derive(Debug)]
struct Terminal {
    sender: std::sync::mpsc::SyncSender<String>,
    /// stderr is the terminal too (stdout always is while an editor runs).
    stderr: bool,
}

impl Terminal {
    /// Hands a line to the editor; gives it back when the editor is gone.
    fn print(&self, line: Vec<u8>) -> Result<(), Vec<u8>> {
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
        self.sender.send(text).map_err(|_| line)
    }
}

static TERMINAL: OnceLock<Terminal> = OnceLock::new();

/// From now on, lines for stdout (and for stderr, when it is the terminal too) go to
/// `sender`, a line editor's external printer. Once the editor is gone, lines are written
/// directly again.
pub fn print_above_prompt(sender: std::sync::mpsc::SyncSender<String>) {
    use std::io::IsTerminal;
    let stderr = std::io::stderr().is_terminal();
    let _ = TERMINAL.set(Terminal { sender, stderr });
}

/// The most bytes of log lines waiting for a blocked output before lines are dropped.
pub const QUEUE_BYTES: usize = 1 << 20;

static QUEUE: OnceLock<Queue> = OnceLock::new();

/// Lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<Pending>,
    /// Signalled when lines are queued.
    queued: Condvar,
    /// Signalled when the writer has written everything it took.
    drained: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    lines: VecDeque<(Dest, Vec<u8>)>,
    bytes: usize,
    dropped: u64,
    /// The writer holds taken lines it has not written yet.
    writing: bool,
}

impl Queue {
    fn push(&self, dest: Dest, line: Vec<u8>) {
        let mut p = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if p.bytes + line.len() > QUEUE_BYTES {
            p.dropped += 1;
            return;
        }
        p.bytes += line.len();
        p.lines.push_back((dest, line));
        drop(p);
        self.queued.notify_one();
    }

    /// The writer thread: takes everything queued, writes it without the lock held (this
    /// is where a blocked output waits), then tells how many lines were dropped meanwhile.
    fn run(&self) {
        let mut p = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while p.lines.is_empty() && p.dropped == 0 {
                p.writing = false;
                self.drained.notify_all();
                p = self.queued.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            let lines = std::mem::take(&mut p.lines);
            let dropped = std::mem::take(&mut p.dropped);
            p.bytes = 0;
            p.writing = true;
            drop(p);
            for (dest, line) in &lines {
                write_now(*dest, line);
            }
            if dropped > 0 {
                let note = format_line(
                    Level::Warning,
                    format_args!("{dropped} log lines were dropped while the log output was blocked"),
                );
                write_now(log_dest(Dest::Stdout), format!("{note}\n").as_bytes());
            }
            p = self.state.lock().unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits up to `limit` for everything queued to be written.
    fn flush(&self, limit: Duration) {
        let p = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.drained.wait_timeout_while(p, limit, |p| !p.lines.is_empty() || p.writing || p.dropped > 0);
    }
}

/// From now on, log lines (and [`plain`] lines) are written by a thread of their own through
/// a bounded queue (see the module docs). Servers call it before they listen. Falls back to
/// direct writes if the thread cannot start.
pub fn background() {
    if QUEUE.get().is_some() {
        return;
    }
    let spawned = std::thread::Builder::new().name("ws-log".into()).spawn(|| {
        let q = QUEUE.get_or_init(Queue::default);
        q.run();
    });
    if spawned.is_ok() {
        // The queue exists once the thread has made it; lines logged meanwhile go direct.
        let _ = QUEUE.get_or_init(Queue::default);
    }
}

/// Waits (up to 2 s) until the background writer has written every queued line: called
/// when a plugin's run ends, so that its last lines are not lost.
pub fn flush() {
    if let Some(q) = QUEUE.get() {
        q.flush(Duration::from_secs(2));
    }
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
    fn control_characters_from_the_network_are_escaped() {
        assert_eq!(escape_controls("plain text\tok", false), "plain text\tok");
        assert_eq!(escape_controls("a\rb\x1b[2Jc\x07", false), "a\\rb\\x1b[2Jc\\x07");
        assert_eq!(escape_controls("line1\nline2", false), "line1\\nline2");
        assert_eq!(escape_controls("line1\nline2", true), "line1\nline2");
        assert_eq!(escape_controls("\u{9b}31m \x1b]0;title\x07", true), "\\u{9b}31m \\x1b]0;title\\x07");
        let line = format_line(Level::Info, format_args!("reason {}", "bye\r\n[fake] line"));
        assert!(line.ends_with("reason bye\\r\\n[fake] line"), "{line}");
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
