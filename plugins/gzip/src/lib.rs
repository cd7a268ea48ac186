//! `ws gzip FILE [--run_count N] [--force]`: compresses FILE into `FILE.gz` (deflate level
//! 6, as `gzip -6`), logging as the reference does: `gzip input: FILE size N cksum H`, the
//! median compression time of N runs in µs, and `gzip output: FILE.gz size N cksum H` (the
//! checksum is the reference's djb2 over signed bytes).
//!
//! Unlike the reference it streams (constant memory for any size: it read the whole file
//! and built the whole output in memory), writes `FILE.gz` under a temporary name renamed
//! when complete, never replaces an existing `FILE.gz` without `--force`, and takes the
//! median of the *sorted* run times (it took the middle of the unsorted list). FILE is kept,
//! as the reference keeps it (GNU gzip removes it).

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use ws_common::gz::{CHUNK, Tally, TallyReader, TallyWriter, commit, start_output};
use ws_common::info;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Gzip a file
#[derive(Debug, Parser)]
#[command(name = "ws gzip", about = "Compress FILE into FILE.gz, timing the compression")]
struct Args {
    /// The file to compress
    filename: PathBuf,
    /// Compress this many times and log the median time
    #[arg(long = "run_count", default_value_t = 1, value_name = "N")]
    run_count: u32,
    /// Replace an existing FILE.gz
    #[arg(short = 'f', long)]
    force: bool,
}

/// Compresses `input` into `out`; returns the input's tally and `out`.
fn compress<W: Write>(input: &Path, out: W) -> io::Result<(Tally, W)> {
    let mut reader = TallyReader::new(BufReader::with_capacity(CHUNK, File::open(input)?));
    let mut enc = GzEncoder::new(out, Compression::new(6));
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n])?;
    }
    Ok((reader.tally, enc.finish()?))
}

#[derive(Debug, Default)]
struct Gzip;

impl Plugin for Gzip {
    const NAME: &'static CStr = c"gzip";
    const SUMMARY: &'static CStr = c"Gzip a file";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let input = &args.filename;
        let shown = input.display();
        let meta = std::fs::metadata(input).map_err(|e| Error::failure(format!("cannot read {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(Error::failure(format!("{shown} is not a regular file")));
        }
        let mut target = input.clone().into_os_string();
        target.push(".gz");
        let target = PathBuf::from(target);
        let tmp = start_output(&target, args.force).map_err(|e| Error::failure(e.to_string()))?;
        let read_err = |e: io::Error| Error::failure(format!("cannot compress {shown}: {e}"));
        let mut times = Vec::new();
        // The timing runs before the last compress into the void; the last one writes.
        for _ in 1..args.run_count.max(1) {
            let t = Instant::now();
            compress(input, io::sink()).map_err(read_err)?;
            times.push(t.elapsed().as_micros());
        }
        let t = Instant::now();
        let out = TallyWriter::new(io::BufWriter::with_capacity(CHUNK, tmp));
        let (input_tally, out) = compress(input, out).map_err(read_err)?;
        times.push(t.elapsed().as_micros());
        let output_tally = out.tally;
        let tmp = out.inner.into_inner().map_err(|e| read_err(e.into_error()))?;
        info!("gzip input: {shown} size {} cksum {}", input_tally.size, input_tally.cksum.0);
        times.sort_unstable();
        info!("compress median runtime: {}", times[times.len() / 2]);
        commit(tmp, input, &target, args.force).map_err(|e| Error::failure(e.to_string()))?;
        info!("gzip output: {} size {} cksum {}", target.display(), output_tally.size, output_tally.cksum.0);
        Ok(())
    }
}

declare_plugin!(Gzip);
