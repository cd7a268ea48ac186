//! Command-line parsing with clap, shaped for plugins: `--help` prints and exits 0, a bad
//! command line becomes *one* line on stderr and exit code 2 (clap's own report spans
//! several lines and a usage block).

use std::ffi::OsString;

use clap::Parser;
use clap::error::ErrorKind;
use ws_plugin_api::Error;

/// Parses `args` (`args[0]` is `"ws NAME"`) into `T`.
pub fn parse<T: Parser>(args: Vec<OsString>) -> Result<T, Error> {
    let bin = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_else(|| "ws".into());
    T::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Error::exit(if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 })
        }
        _ => Error::usage(format!("{} (see '{bin} --help')", first_line(&e))),
    })
}

fn first_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let line = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").trim().to_string()
}
