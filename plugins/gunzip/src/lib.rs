//! `ws gunzip FILE.gz [--force]`: decompresses into FILE (the name without its last
//! extension), logging as the reference does: `gunzip input: …` and `gunzip output: …`
//! with sizes and the reference's checksum, and the time on stderr
//! (`decompressing file completed in N us`). Concatenated gzip members are decompressed
//! one after another, as GNU gunzip does.
//!
//! Unlike the reference it streams (constant memory), writes under a temporary name renamed
//! only when the whole input decompressed and its CRC matched, so a truncated or corrupt
//! input exits 1 with one line and leaves nothing behind, and never replaces an existing
//! output without `--force`.

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use flate2::bufread::MultiGzDecoder;
use ws_common::gz::{CHUNK, TallyReader, TallyWriter, commit, start_output};
use ws_common::info;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Gunzip a file
#[derive(Debug, Parser)]
#[command(name = "ws gunzip", about = "Decompress FILE.gz into FILE")]
struct Args {
    /// The file to decompress
    filename: PathBuf,
    /// Replace an existing output file
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Debug, Default)]
struct Gunzip;

impl Plugin for Gunzip {
    const NAME: &'static CStr = c"gunzip";
    const SUMMARY: &'static CStr = c"Gunzip a file";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let input = &args.filename;
        let shown = input.display();
        if input.extension().is_none() {
            return Err(Error::failure(format!("{shown} has no extension to take off for the output's name")));
        }
        let target = input.with_extension("");
        info!("filename to decompress: {shown}");
        let mut file = File::open(input).map_err(|e| Error::failure(format!("cannot read {shown}: {e}")))?;
        let mut magic = [0u8; 2];
        let is_gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        if !is_gzip {
            return Err(Error::failure(format!("Cannot decompress content of file {shown}: not in gzip format")));
        }
        io::Seek::rewind(&mut file).map_err(|e| Error::failure(format!("cannot read {shown}: {e}")))?;
        let tmp = start_output(&target, args.force).map_err(|e| Error::failure(e.to_string()))?;
        let started = Instant::now();
        let mut reader = TallyReader::new(BufReader::with_capacity(CHUNK, file));
        let mut out = TallyWriter::new(io::BufWriter::with_capacity(CHUNK, tmp));
        let copied = (|| -> io::Result<()> {
            let mut dec = MultiGzDecoder::new(BufReader::with_capacity(CHUNK, &mut reader));
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = dec.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n])?;
            }
        })();
        // The temporary file is removed when dropped: nothing is left behind on failure.
        copied.map_err(|e| Error::failure(format!("Cannot decompress content of file {shown}: {}", explain(&e))))?;
        let elapsed = started.elapsed().as_micros();
        let (in_tally, out_tally) = (reader.tally, out.tally);
        let tmp = out.inner.into_inner().map_err(|e| Error::failure(format!("cannot write: {}", e.error())))?;
        commit(tmp, input, &target, args.force).map_err(|e| Error::failure(e.to_string()))?;
        eprintln!("decompressing file completed in {elapsed} us");
        info!("gunzip input: {shown} size {} cksum {}", in_tally.size, in_tally.cksum.0);
        info!("gunzip output: {} size {} cksum {}", target.display(), out_tally.size, out_tally.cksum.0);
        Ok(())
    }
}

/// flate2's wording made plain.
fn explain(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the file is truncated".into(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => format!("not gzip data or corrupt ({e})"),
        _ => e.to_string(),
    }
}

declare_plugin!(Gunzip);
