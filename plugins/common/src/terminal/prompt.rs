//! Lines typed by the user, delivered to async code over a channel.
//!
//! On a terminal, a reedline editor runs on its own thread (line editing, history kept in
//! `~/.local/share/ws/history/<name>`; Ctrl-D or Ctrl-C ends input). Otherwise stdin is read
//! line by line, so scripts and tests can pipe input in. Either way EOF arrives as
//! [`Input::Eof`] once, after every line.
//!
//! While the editor runs, every line the plugin prints (log lines, received messages) goes
//! through reedline's external printer ([`crate::log::print_above_prompt`]): it appears above
//! the prompt, and what the user is typing is repainted below it.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use reedline::{
    FileBackedHistory, Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus, Reedline, Signal,
};
use smol::channel::{Receiver, unbounded};

/// One event from the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// A piped line that is not UTF-8 (its bytes, without the newline).
    Bytes(Vec<u8>),
    Eof,
}

/// Starts reading input on a thread; `prompt` (e.g. `"> "`) is shown on terminals only.
pub fn spawn(prompt: &str, history_name: &str) -> Receiver<Input> {
    let (tx, rx) = unbounded();
    let prompt = prompt.to_string();
    let history = history_file(history_name);
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // While the editor reads a line, everything printed goes above the prompt.
    let printer = interactive.then(|| {
        let printer = reedline::ExternalPrinter::<String>::new(1024);
        crate::log::print_above_prompt(printer.sender());
        printer
    });
    std::thread::Builder::new()
        .name("ws-input".into())
        .spawn(move || {
            if let Some(printer) = printer {
                read_terminal(&prompt, history, printer, |i| tx.send_blocking(i).is_ok());
            } else {
                // Bytes, not `lines()`: a line that is not UTF-8 must not end the input.
                let mut stdin = std::io::stdin().lock();
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match stdin.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if buf.ends_with(b"\n") {
                        buf.pop();
                        if buf.ends_with(b"\r") {
                            buf.pop();
                        }
                    }
                    let input = match String::from_utf8(std::mem::take(&mut buf)) {
                        Ok(line) => Input::Line(line),
                        Err(e) => Input::Bytes(e.into_bytes()),
                    };
                    if tx.send_blocking(input).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send_blocking(Input::Eof);
        })
        .expect("spawn input thread");
    rx
}

fn history_file(name: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    let dir = base.join("ws").join("history");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join(name))
}

fn read_terminal(
    prompt: &str,
    history: Option<PathBuf>,
    printer: reedline::ExternalPrinter<String>,
    mut send: impl FnMut(Input) -> bool,
) {
    let mut editor = Reedline::create().with_external_printer(printer);
    if let Some(h) = history.and_then(|p| FileBackedHistory::with_file(1000, p).ok()) {
        editor = editor.with_history(Box::new(h));
    }
    let prompt = PlainPrompt(prompt.to_string());
    loop {
        match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => {
                if !send(Input::Line(line)) {
                    return;
                }
            }
            Ok(_) | Err(_) => return, // Ctrl-D, Ctrl-C, or a terminal error: end of input
        }
    }
}

/// The reference's bare prompt (`> `, `alice > `), nothing on the right.
struct PlainPrompt(String);

impl Prompt for PlainPrompt {
    fn render_prompt_left(&self) -> std::borrow::Cow<'_, str> {
        self.0.as_str().into()
    }
    fn render_prompt_right(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn render_prompt_multiline_indicator(&self) -> std::borrow::Cow<'_, str> {
        "::: ".into()
    }
    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> std::borrow::Cow<'_, str> {
        let failed = if matches!(search.status, PromptHistorySearchStatus::Failing) { "failing " } else { "" };
        format!("({failed}reverse-search: {}) ", search.term).into()
    }
}
