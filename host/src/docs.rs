//! Shell completions and man pages, made from the plugins found at run time.
//!
//! A plugin describes its flags the way it already does for people: its `--help`. The host
//! runs `ws NAME --help` (a child process of its own executable, with the same plugin
//! folders) and reads the options clap lays out there, so a third-party plugin gets
//! completions and a man page without any addition to the C declaration (the ABI stays 1,
//! and plugins built before this work as they are). A plugin whose help is not clap's still
//! gets its name completed, and a page holding its help text.
//!
//! - `ws completions bash|zsh|fish` prints a small script that asks `ws __complete` at each
//!   TAB: subcommand names (plugins found *then*, so a plugin dropped in later is there),
//!   and, after a subcommand, its flags; anything else falls back to file names.
//! - `ws man [SUBCOMMAND]` prints a roff page (`ws man echo_server | man -l -`);
//!   `scripts/install.sh` installs one per plugin.

use std::ffi::OsString;
use std::path::PathBuf;

/// The host's own commands and options, completed beside the plugins' names.
const HOST_WORDS: [&str; 9] =
    ["help", "plugins", "completions", "man", "--help", "--version", "--plugin-dir", "--logfile", "-h"];

/// One option of a subcommand, from its help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// `-x` and `--long` spellings.
    pub names: Vec<String>,
    /// `<VALUE>` if it takes one.
    pub value: Option<String>,
    /// Its description, joined into one paragraph per blank-line-separated block.
    pub text: Vec<String>,
}

/// A subcommand's help, read apart.
#[derive(Debug, Default)]
pub struct Help {
    pub about: Vec<String>,
    pub usage: String,
    pub arguments: Vec<Flag>,
    pub options: Vec<Flag>,
    /// Everything after the options (examples, notes).
    pub after: Vec<String>,
}

/// `ws NAME --help`, as text (empty if the plugin prints none).
pub fn help_text(dirs: &[PathBuf], name: &str) -> String {
    let Ok(exe) = std::env::current_exe() else { return String::new() };
    let mut cmd = std::process::Command::new(exe);
    for d in dirs {
        cmd.arg("--plugin-dir").arg(d);
    }
    cmd.arg(name).arg("--help").stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Reads clap's help layout: an about paragraph, `Usage:`, then `Arguments:` and
/// `Options:` sections whose entries start with their names and go on indented.
pub fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    #[derive(PartialEq)]
    enum Section {
        About,
        Arguments,
        Options,
        After,
    }
    let mut section = Section::About;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(usage) = trimmed.strip_prefix("Usage:") {
            help.usage = usage.trim().to_string();
            continue;
        }
        match trimmed {
            "Arguments:" => {
                section = Section::Arguments;
                continue;
            }
            "Options:" => {
                section = Section::Options;
                continue;
            }
            _ => {}
        }
        let indent = line.len() - line.trim_start().len();
        let list = match section {
            Section::About => {
                help.about.push(trimmed.to_string());
                continue;
            }
            Section::After => {
                help.after.push(line.to_string());
                continue;
            }
            Section::Arguments => &mut help.arguments,
            Section::Options => &mut help.options,
        };
        if trimmed.is_empty() {
            if let Some(last) = list.last_mut()
                && last.text.last().is_some_and(|t| !t.is_empty())
            {
                last.text.push(String::new());
            }
            continue;
        }
        if indent == 0 {
            section = Section::After;
            help.after.push(line.to_string());
            continue;
        }
        // An entry starts at a small indent; its description is indented further (or
        // follows on the same line after two spaces).
        let starts_entry = indent <= 6
            && (trimmed.starts_with('-') || (section == Section::Arguments && trimmed.starts_with(['<', '['])));
        if starts_entry {
            let (head, rest) = match trimmed.split_once("  ") {
                Some((h, r)) => (h.trim(), r.trim()),
                None => (trimmed, ""),
            };
            list.push(entry(head, rest));
        } else if let Some(last) = list.last_mut() {
            last.text.push(trimmed.to_string());
        }
    }
    for f in help.options.iter_mut().chain(help.arguments.iter_mut()) {
        while f.text.last().is_some_and(String::is_empty) {
            f.text.pop();
        }
    }
    while help.about.last().is_some_and(String::is_empty) {
        help.about.pop();
    }
    help
}

/// `-p, --port <PORT>` → names `-p`, `--port`, value `<PORT>`.
fn entry(head: &str, rest: &str) -> Flag {
    let mut names = Vec::new();
    let mut value = Vec::new();
    for token in head.split([',', ' ']).filter(|t| !t.is_empty()) {
        if token.starts_with('-') && value.is_empty() {
            names.push(token.split('=').next().unwrap_or(token).to_string());
        } else {
            value.push(token);
        }
    }
    if names.is_empty() {
        // An argument: `<URL>`.
        names.push(head.to_string());
    }
    let text = if rest.is_empty() { Vec::new() } else { vec![rest.to_string()] };
    Flag { names, value: (!value.is_empty()).then(|| value.join(" ")), text }
}

/// What `ws __complete CWORD WORDS...` prints: one candidate per line.
pub fn complete(dirs: &[PathBuf], plugins: &[String], args: &[OsString]) -> String {
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let Some((cword, words)) = words.split_first() else { return String::new() };
    let cword: usize = cword.parse().unwrap_or(0);
    let current = words.get(cword).map(String::as_str).unwrap_or("");
    // The subcommand: the first word after `ws` that is not a host option (or its value).
    let mut sub = None;
    let mut i = 1;
    while i < cword.min(words.len()) {
        match words[i].as_str() {
            "--plugin-dir" | "--logfile" => i += 2,
            w if w.starts_with('-') => i += 1,
            w => {
                sub = Some((i, w.to_string()));
                break;
            }
        }
    }
    let mut out = String::new();
    match sub {
        None => {
            if matches!(words.get(cword.wrapping_sub(1)).map(String::as_str), Some("--plugin-dir" | "--logfile")) {
                return out; // a path: the shell's file completion
            }
            for w in plugins.iter().map(String::as_str).chain(HOST_WORDS) {
                if w.starts_with(current) {
                    out.push_str(w);
                    out.push('\n');
                }
            }
        }
        Some((_, name)) if matches!(name.as_str(), "help" | "man") => {
            for w in plugins.iter().filter(|p| p.starts_with(current)) {
                out.push_str(w);
                out.push('\n');
            }
        }
        Some((_, name)) if name == "completions" => {
            for w in ["bash", "zsh", "fish"].into_iter().filter(|s| s.starts_with(current)) {
                out.push_str(w);
                out.push('\n');
            }
        }
        Some((_, name)) => {
            if current.starts_with('-') && plugins.contains(&name) {
                let help = parse_help(&help_text(dirs, &name));
                for f in &help.options {
                    for n in f.names.iter().filter(|n| n.starts_with(current)) {
                        out.push_str(n);
                        out.push('\n');
                    }
                }
            }
        }
    }
    out
}

/// The completion script for `shell`, which calls back `ws __complete`.
pub fn script(shell: &str) -> Option<&'static str> {
    Some(match shell {
        "bash" => {
            r#"# ws completion for bash: eval "$(ws completions bash)", or install it as
# share/bash-completion/completions/ws. Candidates come from `ws __complete` at each TAB,
# so plugins added later are completed too.
_ws() {
    local IFS=$'\n'
    COMPREPLY=($(command "${COMP_WORDS[0]}" __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
}
complete -o default -o bashdefault -F _ws ws
"#
        }
        "zsh" => {
            r#"#compdef ws
# ws completion for zsh: install as _ws in a folder of $fpath (or: source <(ws completions zsh)).
_ws() {
    local -a candidates
    candidates=("${(@f)$(command ${words[1]} __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null)}")
    if (( ${#candidates[@]} )) && [[ -n "${candidates[1]}" ]]; then
        compadd -a candidates
    else
        _files
    fi
}
if [[ "$funcstack[1]" = "_ws" ]]; then _ws "$@"; else compdef _ws ws; fi
"#
        }
        "fish" => {
            r#"# ws completion for fish: install as ws.fish in ~/.config/fish/completions (or:
# ws completions fish | source).
function __ws_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    set -a words $current
    command ws __complete (math (count $words) - 1) $words 2>/dev/null
end
complete -c ws -f -a '(__ws_complete)'
complete -c ws -n 'test -z (__ws_complete | string collect)' -F
"#
        }
        _ => return None,
    })
}

/// Escapes text for roff.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\\\").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// A man page (roff, section 1) for `ws NAME` from its help; `summary` is its one line.
pub fn man_page(name: &str, summary: &str, help: &Help, version: &str) -> String {
    let title = format!("WS-{}", name.to_uppercase());
    let mut p = format!(".TH \"{title}\" \"1\" \"\" \"ws {version}\" \"ws manual\"\n");
    p.push_str(&format!(".SH NAME\nws\\-{} \\- {}\n", roff(name), roff(summary)));
    p.push_str(&format!(".SH SYNOPSIS\n.B {}\n", roff(if help.usage.is_empty() { name } else { &help.usage })));
    if !help.about.is_empty() {
        p.push_str(".SH DESCRIPTION\n");
        p.push_str(&paragraphs(&help.about));
    }
    for (title, list) in [("ARGUMENTS", &help.arguments), ("OPTIONS", &help.options)] {
        if list.is_empty() {
            continue;
        }
        p.push_str(&format!(".SH {title}\n"));
        for f in list {
            let names = f.names.iter().map(|n| format!("\\fB{}\\fR", roff(n))).collect::<Vec<_>>().join(", ");
            let value = f.value.as_deref().map(|v| format!(" \\fI{}\\fR", roff(v))).unwrap_or_default();
            p.push_str(&format!(".TP\n{names}{value}\n"));
            p.push_str(&paragraphs(&f.text).replace(".PP\n", ".IP\n"));
        }
    }
    if help.after.iter().any(|l| !l.trim().is_empty()) {
        p.push_str(".SH NOTES\n.nf\n");
        for l in &help.after {
            p.push_str(&roff(l));
            p.push('\n');
        }
        p.push_str(".fi\n");
    }
    p.push_str(".SH SEE ALSO\n.BR ws (1)\n");
    p
}

/// The page of `ws` itself: its options and every subcommand found.
pub fn host_page(head: &str, plugins: &[(String, String)], version: &str) -> String {
    let mut p = format!(".TH \"WS\" \"1\" \"\" \"ws {version}\" \"ws manual\"\n");
    p.push_str(".SH NAME\nws \\- a WebSocket and HTTP command\\-line tool\n");
    p.push_str(".SH SYNOPSIS\n.B ws\n[\\fIOPTIONS\\fR] \\fISUBCOMMAND\\fR [\\fIARGS\\fR...]\n");
    p.push_str(
        ".SH DESCRIPTION\nEvery subcommand is a plugin (a shared library named libws_NAME.so) found at run time; \
               \\fBws plugins \\-v\\fR says where they are looked for.\n",
    );
    p.push_str(".SH OPTIONS AND COMMANDS\n.nf\n");
    for l in head.lines().skip_while(|l| !l.starts_with("Options:")) {
        p.push_str(&roff(l));
        p.push('\n');
    }
    p.push_str(".fi\n.SH SUBCOMMANDS\n");
    for (name, summary) in plugins {
        p.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(name), roff(summary)));
    }
    p.push_str(".SH SEE ALSO\n");
    let refs: Vec<String> = plugins.iter().map(|(n, _)| format!(".BR ws\\-{} (1)", roff(n))).collect();
    p.push_str(&refs.join(",\n"));
    p.push('\n');
    p
}

fn paragraphs(lines: &[String]) -> String {
    let mut out = String::new();
    let mut open = false;
    for l in lines {
        if l.is_empty() {
            if open {
                out.push_str(".PP\n");
                open = false;
            }
            continue;
        }
        out.push_str(&roff(l));
        out.push('\n');
        open = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAP_HELP: &str = "Echo server: sends every message back to its sender

Usage: ws echo_server [OPTIONS] [URL]

Arguments:
  [URL]
          Where to go

Options:
      --host <HOST>
          Address to listen on
          
          [default: 127.0.0.1]

  -p, --port <PORT>
          Port to listen on

  -6
          Listen on IPv6

  -h, --help
          Print help (see a summary with '-h')
";

    #[test]
    fn clap_help_is_read_into_flags() {
        let h = parse_help(CLAP_HELP);
        assert_eq!(h.about, ["Echo server: sends every message back to its sender"]);
        assert_eq!(h.usage, "ws echo_server [OPTIONS] [URL]");
        let names: Vec<Vec<String>> = h.options.iter().map(|f| f.names.clone()).collect();
        assert_eq!(names, [vec!["--host"], vec!["-p", "--port"], vec!["-6"], vec!["-h", "--help"]]);
        assert_eq!(h.options[0].value.as_deref(), Some("<HOST>"));
        assert_eq!(h.options[0].text, ["Address to listen on", "", "[default: 127.0.0.1]"]);
        assert_eq!(h.arguments[0].names, ["[URL]"]);
        let page = man_page("echo_server", "Echo server", &h, "0.1.0");
        assert!(page.contains(".TH \"WS-ECHO_SERVER\" \"1\""), "{page}");
        assert!(page.contains("\\fB\\-p\\fR, \\fB\\-\\-port\\fR \\fI<PORT>\\fR"), "{page}");
    }

    #[test]
    fn completion_picks_names_then_flags() {
        let plugins = vec!["echo_server".to_string(), "connect".to_string()];
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(complete(&[], &plugins, &args(&["1", "ws", "ec"])), "echo_server\n");
        assert_eq!(complete(&[], &plugins, &args(&["2", "ws", "man", "co"])), "connect\n");
        assert_eq!(complete(&[], &plugins, &args(&["2", "ws", "--plugin-dir", "x"])), "");
        assert_eq!(complete(&[], &plugins, &args(&["2", "ws", "completions", "f"])), "fish\n");
    }
}
