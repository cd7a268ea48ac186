//! `ws`: the minimal host. It parses only its own few options, finds the plugin that holds the
//! subcommand, and hands it the rest of the command line. It has no async runtime and never
//! reads stdin, so a plugin owns the terminal and the process from the moment it runs.
//!
//! See `discovery` for where plugins are found and `loader` for the C boundary.

mod discovery;
mod docs;
mod loader;

use std::ffi::{CString, OsString};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ws_plugin_api::{ABI_VERSION, API_VERSION, EXIT_USAGE};

const HELP_HEAD: &str = "ws is a websocket tool
Usage: ws [OPTIONS] SUBCOMMAND [ARGS...]

Options:
  -h,--help                   Print this help message and exit
  --version                   Print the version and exit (after a subcommand too)
  --logfile PATH              Every log line of the subcommand to PATH (truncated first)
  --plugin-dir DIR            Look for plugins in DIR first (repeatable)

Commands:
  help SUBCOMMAND             Same as `ws SUBCOMMAND --help`
  plugins [-v]                List the plugins found, their files and versions
  completions bash|zsh|fish   Print a shell completion script (subcommands and their flags)
  man [SUBCOMMAND]            Print the man page of ws or of a subcommand (roff)
";

/// What the user asked the host for.
enum Action {
    Help,
    Version,
    Plugins { verbose: bool },
    Completions(String),
    Complete(Vec<OsString>),
    Man(Option<String>),
    Run { name: String, args: Vec<OsString> },
}

struct Cli {
    plugin_dirs: Vec<PathBuf>,
    action: Action,
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Cli, String> {
    let mut plugin_dirs = Vec::new();
    // `--logfile PATH` before the subcommand is the subcommand's (its log lines are its own).
    let mut logfile: Vec<OsString> = Vec::new();
    while let Some(arg) = args.next() {
        let Some(s) = arg.to_str() else {
            return Err(format!("invalid argument {arg:?}"));
        };
        match s {
            "-h" | "--help" => return Ok(Cli { plugin_dirs, action: Action::Help }),
            "--version" | "-V" => return Ok(Cli { plugin_dirs, action: Action::Version }),
            "--plugin-dir" => {
                let dir = args.next().ok_or("--plugin-dir needs a folder")?;
                plugin_dirs.push(dir.into());
            }
            _ if s.starts_with("--plugin-dir=") => plugin_dirs.push(s["--plugin-dir=".len()..].into()),
            "--logfile" => {
                let path = args.next().ok_or("--logfile needs a file")?;
                logfile = vec!["--logfile".into(), path];
            }
            _ if s.starts_with("--logfile=") => logfile = vec![arg.clone()],
            "help" => {
                let action = match args.next() {
                    Some(cmd) => Action::Run { name: cmd.to_string_lossy().into_owned(), args: vec!["--help".into()] },
                    None => Action::Help,
                };
                return Ok(Cli { plugin_dirs, action });
            }
            "plugins" => {
                let verbose = args.any(|a| a == "-v" || a == "--verbose");
                return Ok(Cli { plugin_dirs, action: Action::Plugins { verbose } });
            }
            "completions" => {
                let shell = args.next().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                return Ok(Cli { plugin_dirs, action: Action::Completions(shell) });
            }
            "__complete" => return Ok(Cli { plugin_dirs, action: Action::Complete(args.collect()) }),
            "man" => {
                let sub = args.next().map(|s| s.to_string_lossy().into_owned());
                return Ok(Cli { plugin_dirs, action: Action::Man(sub) });
            }
            _ if s.starts_with('-') => return Err(format!("unknown option '{s}' (see ws --help)")),
            _ => {
                let args: Vec<OsString> = logfile.into_iter().chain(args).collect();
                // As the reference (CLI11's fallthrough): `--version` after the subcommand is
                // the tool's, so every subcommand answers it alike.
                let options = args.iter().take_while(|a| *a != "--");
                if options.into_iter().any(|a| a == "--version") {
                    return Ok(Cli { plugin_dirs, action: Action::Version });
                }
                return Ok(Cli { plugin_dirs, action: Action::Run { name: s.to_string(), args } });
            }
        }
    }
    Ok(Cli { plugin_dirs, action: Action::Help })
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "ws: {msg}");
    ExitCode::from(EXIT_USAGE as u8)
}

/// Every loadable plugin, first of each name; shadowed duplicates and broken files reported.
struct Inventory {
    plugins: Vec<loader::Loaded>,
    shadowed: Vec<(String, PathBuf)>,
    broken: Vec<loader::LoadError>,
}

fn inventory(dirs: &[PathBuf]) -> Inventory {
    let mut inv = Inventory { plugins: Vec::new(), shadowed: Vec::new(), broken: Vec::new() };
    for (name, path) in discovery::all(dirs) {
        if inv.plugins.iter().any(|p| p.name == name) {
            inv.shadowed.push((name, path));
            continue;
        }
        match loader::load(&path) {
            Ok(p) => inv.plugins.push(p),
            Err(e) => inv.broken.push(e),
        }
    }
    inv.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    inv
}

fn print_help(dirs: &[PathBuf]) -> ExitCode {
    let inv = inventory(dirs);
    let mut out = String::from(HELP_HEAD);
    out.push_str("\nSubcommands:\n");
    if inv.plugins.is_empty() {
        out.push_str("  (no plugins found; see `ws plugins`)\n");
    }
    for p in &inv.plugins {
        out.push_str(&format!("  {:<28}{}\n", p.name, p.summary));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    for e in &inv.broken {
        let _ = writeln!(std::io::stderr(), "ws: warning: {e}");
    }
    ExitCode::SUCCESS
}

fn print_plugins(dirs: &[PathBuf], verbose: bool) -> ExitCode {
    let inv = inventory(dirs);
    let mut out = String::new();
    let host_api = API_VERSION.to_string_lossy();
    for p in &inv.plugins {
        out.push_str(&format!("{:<20} api {:<8} {}", p.name, p.api_version, p.path.display()));
        if verbose {
            out.push_str(&format!("  ({}; {})", p.rustc_version, api_note(&p.api_version, &host_api)));
        }
        out.push('\n');
    }
    for (name, path) in &inv.shadowed {
        out.push_str(&format!("{name:<20} shadowed     {}\n", path.display()));
    }
    for e in &inv.broken {
        let word = if matches!(e, loader::LoadError::AbiMismatch { .. }) { "refused" } else { "broken" };
        out.push_str(&format!("{word}: {e}\n"));
    }
    if verbose || inv.plugins.is_empty() {
        out.push_str("searched:\n");
        for d in dirs {
            out.push_str(&format!("  {}\n", d.display()));
        }
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// How a plugin's `ws-plugin-api` version compares with the host's: any version with the
/// same ABI is fine (the host checked the ABI); an older or newer one is said so.
fn api_note(plugin: &str, host: &str) -> String {
    let parse = |v: &str| -> Vec<u64> { v.split(['.', '-']).take(3).map(|n| n.parse().unwrap_or(0)).collect() };
    match parse(plugin).cmp(&parse(host)) {
        std::cmp::Ordering::Equal => format!("ws-plugin-api {plugin}, as this ws"),
        std::cmp::Ordering::Less => {
            format!("ws-plugin-api {plugin}, older than this ws's {host}: fine, same ABI {ABI_VERSION}")
        }
        std::cmp::Ordering::Greater => {
            format!("ws-plugin-api {plugin}, newer than this ws's {host}: fine, same ABI {ABI_VERSION}")
        }
    }
}

fn run(dirs: &[PathBuf], name: &str, args: Vec<OsString>) -> ExitCode {
    let path = discovery::is_valid_name(name).then(|| discovery::find(dirs, name)).flatten();
    let Some(path) = path else {
        let known: Vec<String> = discovery::all(dirs).into_iter().map(|(n, _)| n).collect();
        let hint = discovery::suggest(name, known.iter().map(String::as_str))
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return fail(format_args!(
            "no such command '{name}'{hint}; see `ws --help`; plugin folders searched: {}",
            searched.join(", ")
        ));
    };
    let plugin = match loader::load(&path) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if plugin.name != name {
        return fail(format_args!("plugin {} declares the command '{}', not '{name}'", path.display(), plugin.name));
    }
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(CString::new(format!("ws {name}")).expect("validated name has no NUL"));
    for a in args {
        #[cfg(unix)]
        let bytes = std::os::unix::ffi::OsStringExt::into_vec(a);
        #[cfg(not(unix))]
        let bytes = a.to_string_lossy().into_owned().into_bytes();
        // An OS argument cannot contain NUL; refuse rather than truncate if one ever does.
        match CString::new(bytes) {
            Ok(c) => argv.push(c),
            Err(_) => return fail("an argument contains a NUL byte"),
        }
    }
    let _ = std::io::stdout().flush();
    let code = plugin.run(&argv);
    // Exit codes outside 0..=255 cannot be represented; report them as a failure.
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let dirs = discovery::search_dirs(&cli.plugin_dirs);
    match cli.action {
        Action::Help => print_help(&dirs),
        Action::Version => {
            println!(
                "ws {} (plugin ABI {ABI_VERSION}, ws-plugin-api {})",
                env!("CARGO_PKG_VERSION"),
                API_VERSION.to_string_lossy()
            );
            ExitCode::SUCCESS
        }
        Action::Plugins { verbose } => print_plugins(&dirs, verbose),
        Action::Completions(shell) => match docs::script(&shell) {
            Some(script) => {
                print!("{script}");
                ExitCode::SUCCESS
            }
            None => fail(format_args!("completions for '{shell}'? bash, zsh or fish")),
        },
        Action::Complete(words) => {
            let names: Vec<String> = discovery::all(&dirs).into_iter().map(|(n, _)| n).collect();
            print!("{}", docs::complete(&cli.plugin_dirs, &names, &words));
            ExitCode::SUCCESS
        }
        Action::Man(None) => {
            let inv = inventory(&dirs);
            let plugins: Vec<(String, String)> =
                inv.plugins.iter().map(|p| (p.name.clone(), p.summary.clone())).collect();
            print!("{}", docs::host_page(HELP_HEAD, &plugins, env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Action::Man(Some(name)) => {
            let Some(path) = discovery::is_valid_name(&name).then(|| discovery::find(&dirs, &name)).flatten() else {
                return fail(format_args!("no such command '{name}'; see `ws --help`"));
            };
            let plugin = match loader::load(&path) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let help = docs::parse_help(&docs::help_text(&cli.plugin_dirs, &name));
            print!("{}", docs::man_page(&name, &plugin.summary, &help, env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Action::Run { name, args } => run(&dirs, &name, args),
    }
}
