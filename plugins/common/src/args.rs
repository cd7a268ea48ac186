//! Command-line parsing with clap, shaped for plugins: `--help` prints and exits 0, a bad
//! command line becomes *one* line on stderr and exit code 2 (clap's own report spans
//! several lines and a usage block).
//!
//! `--logfile PATH` is every subcommand's, as in the reference: it is taken out before clap
//! sees the line, PATH is truncated, every log line of every level goes there from then on
//! ([`crate::log::to_file`]), and stderr says so in one line. (The host passes a `--logfile`
//! given before the subcommand along, and answers `--version` itself.)

use std::ffi::OsString;

use clap::Parser;
use clap::error::ErrorKind;
use ws_plugin_api::Error;

/// Parses `args` (`args[0]` is `"ws NAME"`) into `T`.
pub fn parse<T: Parser>(args: Vec<OsString>) -> Result<T, Error> {
    let bin = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_else(|| "ws".into());
    let (args, logfile) = take_logfile(args).map_err(|e| Error::usage(format!("{e} (see '{bin} --help')")))?;
    T::try_parse_from(args)
        .map_err(|e| match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                Error::exit(if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 })
            }
            _ => Error::usage(format!("{} (see '{bin} --help')", first_line(&e))),
        })
        .and_then(|parsed| {
            if let Some(path) = logfile {
                let file = std::fs::File::create(&path).map_err(|e| {
                    Error::failure(format!("Fatal error, cannot open log file {} for writing: {e}", path.display()))
                })?;
                crate::log::to_file(file);
                eprintln!("All logs will be redirected to {}", path.display());
            }
            Ok(parsed)
        })
}

/// Takes `--logfile PATH` (or `--logfile=PATH`; the last one wins) out of the options,
/// which end at `--`.
fn take_logfile(args: Vec<OsString>) -> Result<(Vec<OsString>, Option<std::path::PathBuf>), String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut logfile = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a);
            rest.extend(it);
            break;
        }
        if a == "--logfile" {
            logfile = Some(it.next().ok_or("--logfile needs a file")?.into());
        } else if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--logfile=")) {
            logfile = Some(p.into());
        } else {
            rest.push(a);
        }
    }
    Ok((rest, logfile))
}

/// A count of bytes as curl takes one (`--limit-rate`, `--max-filesize`) and servers'
/// limits: a number with an optional k, m or g (powers of 1024; `1.5M` is 1,572,864). Zero
/// is refused: no flag here means "nothing" by it.
pub fn byte_count(raw: &str) -> Result<u64, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    let n: f64 = digits.parse().map_err(|_| format!("'{raw}' is not a size (a number, with k, m or g)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("'{raw}' is not a size (a number, with k, m or g)"));
    }
    match (n * unit as f64) as u64 {
        0 => Err(format!("'{raw}' is not a size above zero")),
        bytes => Ok(bytes),
    }
}

fn first_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let line = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_curls_suffixes() {
        assert_eq!(byte_count("1000"), Ok(1000));
        assert_eq!(byte_count("100k"), Ok(102_400));
        assert_eq!(byte_count("1.5M"), Ok(1_572_864));
        assert_eq!(byte_count("2g"), Ok(2 << 30));
        for bad in ["fast", "0", "-1k", "NaN", "inf", ""] {
            assert!(byte_count(bad).is_err(), "{bad}");
        }
    }
}
