//! The response's way out: the reference's layout (headers, sizes, `Status`, `payload:`)
//! or the body alone, to stdout or to a file written under a temporary name, decoded on the
//! fly with `--compressed`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use http_body_util::BodyExt;
use hyper::header;
use ws_common::url::Url;
use ws_plugin_api::Error;

use crate::args::{Args, code, fail};
use crate::decode::Decoder;

/// The most body held back so that the summary can come first (the guide's order).
pub(crate) const HOLD: usize = 4 << 20;

/// Where the body goes.
pub(crate) enum Sink {
    Stdout,
    /// A regular file (or a new one): written to a temporary name beside it, renamed when
    /// complete.
    File {
        tmp: tempfile::NamedTempFile,
        path: PathBuf,
    },
    /// Anything else that exists (`/dev/null`, a FIFO, a terminal): written in place. Renaming
    /// a temporary file over it would replace the device with a regular file.
    Special(std::fs::File),
}

pub(crate) fn output_path(args: &Args, url: &Url) -> Result<Option<PathBuf>, Error> {
    if let Some(o) = &args.output {
        return Ok(Some(o.clone()));
    }
    if !args.remote_name {
        return Ok(None);
    }
    let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    match ws_common::transfer::safe_file_name(&decoded) {
        Some(name) => Ok(Some(PathBuf::from(name))),
        None => Err(fail(code::WRITE, format!("cannot take a file name from {url}: use --output FILE"))),
    }
}

pub(crate) async fn deliver(
    args: &Args,
    url: &Url,
    resp: hyper::Response<hyper::body::Incoming>,
    upload: usize,
    head: bool,
) -> Result<(), Error> {
    let status = resp.status();
    // Every Content-Encoding line, in order; decoded only with --compressed, as curl does.
    let codings =
        resp.headers().get_all(header::CONTENT_ENCODING).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
    let codings = codings.collect::<Vec<_>>().join(",");
    let mut decoder = if args.compressed { Decoder::for_codings(&codings)? } else { None };
    let content_length: Option<u64> =
        resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let content_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut lines: Vec<String> = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{}: {}", ws_common::ws::header_case(k.as_str()), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    lines.sort_by_key(|l| l.to_ascii_lowercase());
    let target = output_path(args, url)?;
    let mut sink = match &target {
        None => Sink::Stdout,
        Some(path) if path.as_os_str() == "-" => Sink::Stdout,
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
            Sink::Special(f)
        }
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let tmp = ws_common::transfer::partial_file(dir, ".ws-curl-")
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
            Sink::File { tmp, path: path.clone() }
        }
    };
    let binary_to_terminal = matches!(sink, Sink::Stdout)
        && std::io::stdout().is_terminal()
        && !(content_type.starts_with("text/")
            || content_type.contains("json")
            || content_type.contains("xml")
            || content_type.is_empty());
    let mut downloaded: u64 = 0;
    let mut body = resp.into_body();
    let to_stdout = matches!(sink, Sink::Stdout);
    let out: Box<dyn Write> = match &mut sink {
        Sink::Stdout => Box::new(std::io::stdout().lock()),
        Sink::File { tmp, .. } => Box::new(std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut())),
        Sink::Special(f) => Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)),
    };
    let print_body = !head && !binary_to_terminal;
    if !args.silent {
        for l in &lines {
            say!(args, "{l}");
        }
        say!(args, "Upload size: {upload}");
    }
    // A bar on a terminal when the body goes to a file; with -v, a line per 10 % otherwise.
    let progress = (!head).then(|| {
        let log: Option<ws_common::progress::LogFn> = args.verbose.then(|| {
            Box::new(|done: u64, total: u64| eprintln!("* {done} of {total} bytes received ({}%)", done * 100 / total))
                as ws_common::progress::LogFn
        });
        ws_common::progress::Progress::new(content_length, !args.silent && !to_stdout, log)
    });
    // The guide's order is the summary (Download size, Status), then `payload: ` and the
    // body; the size is known only at the end, so a body printed with the summary is held
    // back up to HOLD bytes. A bigger one streams, and its summary follows it.
    let layout = to_stdout && !args.silent;
    let mut w = Writer { out, held: (layout && print_body).then(Vec::new), prefix: layout, started: false, print_body };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| receive_error(&e, content_length, downloaded))?;
        let Ok(data) = frame.into_data() else { continue };
        downloaded += data.len() as u64;
        if let Some(p) = &progress {
            p.set(downloaded);
        }
        match &mut decoder {
            Some(d) => w.write(&d.push(&data)?)?,
            None => w.write(&data)?,
        }
    }
    if let Some(d) = decoder {
        w.write(&d.finish()?)?;
    }
    let summary_first = w.held.is_some();
    if let Some(h) = w.held.take() {
        say!(args, "Download size: {downloaded}");
        say!(args, "Status: {}", status.as_u16());
        w.write(&h)?;
    }
    if let Some(p) = &progress {
        p.finish();
    }
    if args.verbose {
        eprintln!("* {downloaded} bytes received");
    }
    let started = w.finish()?;
    match sink {
        Sink::File { tmp, path } => {
            tmp.persist(&path)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {}", path.display(), e.error)))?;
            say!(args, "Writing to disk: {}", path.display());
        }
        Sink::Stdout if started && !args.silent => say!(args, ""),
        _ => {}
    }
    if binary_to_terminal && downloaded > 0 {
        eprintln!(
            "Binary output can mess up your terminal. Use the -O flag to save the file to disk, or --output FILE."
        );
    }
    if !summary_first {
        say!(args, "Download size: {downloaded}");
        say!(args, "Status: {}", status.as_u16());
    }
    Ok(())
}

/// Where the (decoded) body goes, in the reference's layout when `prefix`: `payload: ` before
/// its first byte, and up to [`HOLD`] bytes held back while `held` is `Some`.
struct Writer<'a> {
    out: Box<dyn Write + 'a>,
    held: Option<Vec<u8>>,
    prefix: bool,
    started: bool,
    print_body: bool,
}

impl Writer<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() || !self.print_body {
            return Ok(());
        }
        if let Some(h) = &mut self.held {
            if h.len() + data.len() <= HOLD {
                h.extend_from_slice(data);
                return Ok(());
            }
            let h = self.held.take().unwrap_or_default();
            self.write(&h)?;
        }
        if !self.started && self.prefix {
            self.out.write_all(b"payload: ").map_err(|e| write_error(&e))?;
        }
        self.started = true;
        self.out.write_all(data).map_err(|e| write_error(&e))
    }

    /// Flushes the output; whether any of the body was written.
    fn finish(mut self) -> Result<bool, Error> {
        self.out.flush().map_err(|e| write_error(&e))?;
        Ok(self.started)
    }
}

/// A body that broke off: curl's 18 when the server closed before the length it announced
/// (or before the last chunk), 56 for any other failure.
fn receive_error(e: &hyper::Error, content_length: Option<u64>, downloaded: u64) -> Error {
    let cut_short = e.is_incomplete_message()
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
    match content_length {
        Some(n) if cut_short || downloaded < n => fail(
            code::PARTIAL,
            format!("transfer closed with {} bytes remaining to read", n.saturating_sub(downloaded)),
        ),
        None if cut_short => fail(code::PARTIAL, "transfer closed with outstanding read data remaining"),
        _ => fail(code::PEER_FAILED, format!("failure receiving the body: {e}")),
    }
}

pub(crate) fn write_error(e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::exit(0);
    }
    fail(code::WRITE, format!("failure writing output: {e}"))
}
