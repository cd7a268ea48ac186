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
    /// `-C`: the rest of a download, appended to what the file holds.
    Append(std::fs::File),
}

pub(crate) fn output_path(args: &Args, url: &Url) -> Result<Option<PathBuf>, Error> {
    let name = match &args.output {
        Some(o) if o.as_os_str() == "-" => return Ok(Some(o.clone())),
        Some(o) => o.clone(),
        None if !args.remote_name => return Ok(None),
        None => {
            let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
            let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
            match ws_common::transfer::safe_file_name(&decoded) {
                Some(name) => PathBuf::from(name),
                None => {
                    return Err(fail(code::WRITE, format!("cannot take a file name from {url}: use --output FILE")));
                }
            }
        }
    };
    // As curl: --output-dir prefixes relative names; --create-dirs makes the folders.
    let path = match &args.output_dir {
        Some(dir) if name.is_relative() => dir.join(name),
        _ => name,
    };
    if args.create_dirs
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(code::WRITE, format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(Some(path))
}

/// What the transfer did before the response, for the summary and `-w`.
pub(crate) struct Facts {
    /// Bytes of the request (head and body).
    pub(crate) upload: usize,
    /// The request was a HEAD: no body to print.
    pub(crate) head: bool,
    pub(crate) redirects: u32,
    pub(crate) started: std::time::Instant,
    /// When the last connection's steps ended, and its addresses.
    pub(crate) phases: ws_common::dial::Phases,
    /// When the response head arrived.
    pub(crate) head_at: std::time::Instant,
}

/// The response head as curl prints it: status line, headers as received, blank line.
fn head_text(resp: &hyper::Response<hyper::body::Incoming>) -> String {
    let status = resp.status();
    let version = crate::request::version_name(resp.version());
    let mut text = if resp.version() == hyper::Version::HTTP_2 {
        format!("{version} {} \r\n", status.as_u16())
    } else {
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        format!("{version} {} {reason}\r\n", status.as_u16())
    };
    for (k, v) in resp.headers() {
        text.push_str(&format!("{k}: {}\r\n", String::from_utf8_lossy(v.as_bytes())));
    }
    text.push_str("\r\n");
    text
}

pub(crate) async fn deliver(
    args: &Args,
    url: &Url,
    resp: hyper::Response<hyper::body::Incoming>,
    facts: Facts,
) -> Result<(), Error> {
    let Facts { upload, head, .. } = facts;
    let status = resp.status();
    let head_text = head_text(&resp);
    let version = resp.version();
    let header_value = |name: &str| {
        resp.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
    };
    let location = header_value("location");
    let wanted_headers: Vec<(String, String)> = args
        .write_out
        .as_deref()
        .map(write_out_headers)
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            let v = header_value(&n);
            (n, v)
        })
        .collect();
    if let Some(path) = &args.dump_header {
        if path.as_os_str() == "-" {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(head_text.as_bytes()).map_err(|e| write_error(&e))?;
        } else {
            std::fs::write(path, &head_text)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
        }
    }
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
    if let (Some(max), Some(len)) = (args.max_filesize, content_length)
        && len > max
    {
        return Err(fail(code::TOO_LARGE, format!("Maximum file size exceeded ({len} > {max} bytes)")));
    }
    let target = output_path(args, url)?;
    // -C: a 206 continues the file; a 200 means the server ignored the range (curl's exit
    // 33); a 416 means there is nothing left to fetch (curl leaves the file and exits 0).
    let resuming = args.resume_from > 0;
    if resuming && status == hyper::StatusCode::OK {
        return Err(fail(code::RANGE, "HTTP server doesn't seem to support byte ranges. Cannot resume."));
    }
    if resuming && status == hyper::StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(());
    }
    let mut sink = match &target {
        None => Sink::Stdout,
        Some(path) if path.as_os_str() == "-" => Sink::Stdout,
        Some(path) if resuming && status == hyper::StatusCode::PARTIAL_CONTENT => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| fail(code::WRITE, format!("cannot write {}: {e}", path.display())))?;
            Sink::Append(f)
        }
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
        Sink::Special(f) | Sink::Append(f) => Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)),
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
    let layout = to_stdout && !args.curl_output();
    let mut w = Writer { out, held: (layout && print_body).then(Vec::new), prefix: layout, started: false, print_body };
    // -i and -I: the head goes first, where the body goes (as curl, into -o's file too).
    if args.include || args.head {
        w.out.write_all(head_text.as_bytes()).map_err(|e| write_error(&e))?;
    }
    let paced_from = std::time::Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| receive_error(&e, content_length, downloaded))?;
        let Ok(data) = frame.into_data() else { continue };
        downloaded += data.len() as u64;
        if let Some(max) = args.max_filesize
            && downloaded > max
        {
            return Err(fail(code::TOO_LARGE, format!("Maximum file size exceeded (more than {max} bytes)")));
        }
        if let Some(p) = &progress {
            p.set(downloaded);
        }
        match &mut decoder {
            Some(d) => w.write(&d.push(&data)?)?,
            None => w.write(&data)?,
        }
        // --limit-rate: the next read waits until the average is back under the rate (the
        // server is held back by TCP's window meanwhile).
        if let Some(rate) = args.limit_rate {
            let due = std::time::Duration::from_secs_f64(downloaded as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(paced_from.elapsed()) {
                ws_common::runtime::Timer::after(wait).await;
            }
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
        Sink::Stdout if started && !args.curl_output() => say!(args, ""),
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
    if let Some(format) = &args.write_out {
        let elapsed = facts.started.elapsed().as_secs_f64();
        let since =
            |at: Option<std::time::Instant>| at.map_or(0.0, |at| at.duration_since(facts.started).as_secs_f64());
        let p = facts.phases;
        let vars = WriteOut {
            time_namelookup: since(p.resolved),
            time_connect: since(p.connected),
            time_appconnect: since(p.secured),
            time_pretransfer: since(p.secured.or(p.connected)),
            time_starttransfer: since(Some(facts.head_at)),
            remote: p.remote,
            local: p.local,
            http_code: status.as_u16(),
            http_version: match version {
                hyper::Version::HTTP_2 => "2",
                hyper::Version::HTTP_10 => "1.0",
                _ => "1.1",
            },
            size_download: downloaded,
            size_upload: upload,
            size_header: head_text.len(),
            time_total: elapsed,
            url_effective: url.as_str(),
            num_redirects: facts.redirects,
            redirect_url: if status.is_redirection() { &location } else { "" },
            content_type: &content_type,
            headers: &wanted_headers,
            exitcode: 0,
            errormsg: "",
        };
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(vars.render(format).as_bytes()).and_then(|_| stdout.flush()).map_err(|e| write_error(&e))?;
    }
    Ok(())
}

/// `-w` after a transfer that failed, as curl prints it: the status if one came (`000`
/// otherwise), the exit code and the error message, the rest empty or zero.
pub(crate) fn write_out_failure(
    format: &str,
    url: &Url,
    error: &Error,
    started: std::time::Instant,
    http_code: u16,
) -> Result<(), Error> {
    let vars = WriteOut {
        time_namelookup: 0.0,
        time_connect: 0.0,
        time_appconnect: 0.0,
        time_pretransfer: 0.0,
        time_starttransfer: 0.0,
        remote: None,
        local: None,
        http_code,
        http_version: "0",
        size_download: 0,
        size_upload: 0,
        size_header: 0,
        time_total: started.elapsed().as_secs_f64(),
        url_effective: url.as_str(),
        num_redirects: 0,
        redirect_url: "",
        content_type: "",
        headers: &[],
        exitcode: error.exit_code(),
        errormsg: error.message().unwrap_or(""),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(vars.render(format).as_bytes()).and_then(|_| stdout.flush()).map_err(|e| write_error(&e))
}

/// The names in `%{header{NAME}}` of a -w format.
fn write_out_headers(format: &str) -> Vec<String> {
    format
        .split("%{header{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").map(|(name, _)| name.to_ascii_lowercase()))
        .collect()
}

/// What `-w` can print (curl's names). Times are seconds since the transfer started, for
/// the last connection's steps (name lookup, TCP connect, TLS, first response byte).
struct WriteOut<'a> {
    time_namelookup: f64,
    time_connect: f64,
    time_appconnect: f64,
    time_pretransfer: f64,
    time_starttransfer: f64,
    remote: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
    http_code: u16,
    http_version: &'static str,
    size_download: u64,
    size_upload: usize,
    size_header: usize,
    time_total: f64,
    url_effective: &'a str,
    num_redirects: u32,
    redirect_url: &'a str,
    content_type: &'a str,
    headers: &'a [(String, String)],
    exitcode: i32,
    errormsg: &'a str,
}

impl WriteOut<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let speed = if self.time_total > 0.0 { (self.size_download as f64 / self.time_total) as u64 } else { 0 };
        Some(match name {
            "http_code" | "response_code" => format!("{:03}", self.http_code),
            "http_version" => self.http_version.to_string(),
            "size_download" => self.size_download.to_string(),
            "size_upload" => self.size_upload.to_string(),
            "size_header" => self.size_header.to_string(),
            "time_total" => format!("{:.6}", self.time_total),
            "time_namelookup" => format!("{:.6}", self.time_namelookup),
            "time_connect" => format!("{:.6}", self.time_connect),
            "time_appconnect" => format!("{:.6}", self.time_appconnect),
            "time_pretransfer" => format!("{:.6}", self.time_pretransfer),
            "time_starttransfer" => format!("{:.6}", self.time_starttransfer),
            "remote_ip" => self.remote.map(|a| a.ip().to_string()).unwrap_or_default(),
            "remote_port" => self.remote.map(|a| a.port().to_string()).unwrap_or_default(),
            "local_ip" => self.local.map(|a| a.ip().to_string()).unwrap_or_default(),
            "local_port" => self.local.map(|a| a.port().to_string()).unwrap_or_default(),
            "speed_download" => speed.to_string(),
            "url_effective" | "url" => self.url_effective.to_string(),
            "num_redirects" => self.num_redirects.to_string(),
            "redirect_url" => self.redirect_url.to_string(),
            "content_type" => self.content_type.to_string(),
            "exitcode" => self.exitcode.to_string(),
            "errormsg" => self.errormsg.to_string(),
            "json" => serde_json::json!({
                "http_code": self.http_code,
                "http_version": self.http_version,
                "size_download": self.size_download,
                "size_upload": self.size_upload,
                "size_header": self.size_header,
                "time_total": self.time_total,
                "time_namelookup": self.time_namelookup,
                "time_connect": self.time_connect,
                "time_appconnect": self.time_appconnect,
                "time_pretransfer": self.time_pretransfer,
                "time_starttransfer": self.time_starttransfer,
                "remote_ip": self.remote.map(|a| a.ip().to_string()).unwrap_or_default(),
                "remote_port": self.remote.map_or(0, |a| a.port()),
                "speed_download": speed,
                "url_effective": self.url_effective,
                "num_redirects": self.num_redirects,
                "redirect_url": self.redirect_url,
                "content_type": self.content_type,
                "exitcode": self.exitcode,
                "errormsg": self.errormsg,
            })
            .to_string(),
            _ => {
                let header = name.strip_prefix("header{")?.strip_suffix('}')?.to_ascii_lowercase();
                self.headers.iter().find(|(k, _)| *k == header).map(|(_, v)| v.clone()).unwrap_or_default()
            }
        })
    }

    /// The format with `%{name}`, `%%`, `\n`, `\r` and `\t` replaced, as curl does.
    fn render(&self, format: &str) -> String {
        let mut out = String::new();
        let mut rest = format;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("%{")
                && let Some(end) = find_var_end(after)
                && let Some(value) = self.var(&after[..end])
            {
                out.push_str(&value);
                rest = &after[end + 1..];
                continue;
            }
            let (text, skip) = match c {
                '%' if rest.starts_with("%%") => ("%", 2),
                '\\' if rest.starts_with("\\n") => ("\n", 2),
                '\\' if rest.starts_with("\\r") => ("\r", 2),
                '\\' if rest.starts_with("\\t") => ("\t", 2),
                _ => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                    continue;
                }
            };
            out.push_str(text);
            rest = &rest[skip..];
        }
        out
    }
}

/// Where a `%{…}` variable's name ends (its closing brace; `header{…}` has one inside).
fn find_var_end(after: &str) -> Option<usize> {
    if after.starts_with("header{") {
        return after.find("}}").map(|i| i + 1);
    }
    after.find('}')
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
