//! `ws greet NAME [--shout]`: a complete `ws` subcommand, to copy and make your own.
//!
//! The host finds `libws_greet.so` in a plugin folder, checks its ABI number, and calls
//! [`Greet::run`] with the command line (`args[0]` is `"ws greet"`). Return `Ok(())` for exit
//! code 0, [`Error::usage`] for 2 (a bad command line), [`Error::failure`] for 1, or
//! [`Error::with_code`] for your own; the host prints the message as one line on stderr.
//! `--help` is yours to answer: `ws completions` and `ws man` read the options from it
//! (lines starting with `-`, as clap prints them).

use std::ffi::{CStr, OsString};

use ws_plugin_api::{Error, Plugin, declare_plugin};

#[derive(Debug, Default)]
struct Greet;

const HELP: &str = "Greet someone (an example plugin)

Usage: ws greet [OPTIONS] NAME

Options:
      --shout
          Greet in capitals

  -h, --help
          Print help
";

impl Plugin for Greet {
    const NAME: &'static CStr = c"greet";
    const SUMMARY: &'static CStr = c"Greet someone (an example plugin)";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let mut shout = false;
        let mut name = None;
        for a in args.iter().skip(1) {
            match a.to_str() {
                Some("-h" | "--help") => {
                    print!("{HELP}");
                    return Ok(());
                }
                Some("--shout") => shout = true,
                Some(s) if s.starts_with('-') => return Err(Error::usage(format!("unknown option '{s}'"))),
                Some(s) => name = Some(s.to_string()),
                None => return Err(Error::usage("NAME is not UTF-8")),
            }
        }
        let name = name.ok_or_else(|| Error::usage("missing NAME (usage: ws greet NAME)"))?;
        let line = format!("hello, {name}!");
        println!("{}", if shout { line.to_uppercase() } else { line });
        Ok(())
    }
}

declare_plugin!(Greet);
