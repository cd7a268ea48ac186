//! Responses: the body type hyper sends (bytes or a file read in chunks), files with their
//! validators, ranges and content codings ([`send_file`], [`crate::compress`]), and folder
//! listings.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cache::Head;
use crate::watch::Busy;

/// Largest file compressed on the fly (compressed in memory, so bounded).
pub(crate) const MAX_GZIP: u64 = 8 << 20;

/// Whether the client's validators (`If-None-Match`, else `If-Modified-Since`) match.
fn not_modified(head: &Head, req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    match get(header::IF_NONE_MATCH) {
        Some(inm) => inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == head.etag.as_bytes()
        }),
        None => get(header::IF_MODIFIED_SINCE)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            // A date in the future is no valid validator (RFC 9110 §13.1.3): the full answer.
            .is_some_and(|since| head.modified <= since && since <= std::time::SystemTime::now()),
    }
}

/// A precompressed sibling (`NAME.br`, `NAME.zst`, `NAME.gz`) in the client's order of
/// preference, if one is there and at least as new as the file, answered whole (no
/// ranges are asked of a representation chosen here).
pub(crate) fn sibling(
    root: &crate::path::Root,
    name: &str,
    head: &Head,
    req: &Request<Incoming>,
) -> Option<Response<Body>> {
    if req.headers().contains_key(header::RANGE) {
        return None;
    }
    let accept = req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    for coding in crate::compress::preferred(accept) {
        let Some(file) = root.open_file(&format!("{name}.{}", coding.extension())) else { continue };
        let Some(meta) = file.metadata().ok().filter(|m| m.is_file()) else { continue };
        if meta.modified().ok()? < head.modified {
            continue;
        }
        let mut r = if not_modified(head, req) {
            head.apply(empty(StatusCode::NOT_MODIFIED))
        } else if req.method() == Method::HEAD {
            head.apply(empty(StatusCode::OK))
        } else {
            let chunk = if req.version() == hyper::Version::HTTP_2 { H2_CHUNK } else { CHUNK };
            head.apply(response(StatusCode::OK, Kind::File { file, left: meta.len(), chunk }))
        };
        let whole = r.status() == StatusCode::OK;
        let h = r.headers_mut();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if whole {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        }
        return Some(r);
    }
    None
}
/// Bytes read from a file per body frame: over HTTP/1.1, 64 KiB per write is fastest; over
/// HTTP/2 every stream of a connection holds up to one chunk beyond its send buffer
/// ([`H2_SEND_BUF`]) when the client reads slowly, so there a chunk is one default frame.
const CHUNK: usize = 64 * 1024;
const H2_CHUNK: usize = 16 * 1024;
/// What hyper may buffer per HTTP/2 stream before it stops asking the body for more (its
/// default, ~400 KiB, let a client that never reads hold ~520 KiB per stream: 100 streams
/// on each of 20 connections reached 1 GiB). With it and [`H2_CHUNK`], a stream holds at
/// most 32 KiB, a connection of 100 streams 3.2 MiB.
pub(crate) const H2_SEND_BUF: usize = 16 * 1024;

/// A response body: bytes in memory (errors, listings, gzip, debug) or a file read in
/// [`CHUNK`]s as hyper asks for them (constant memory for any size; the reads are inline,
/// see [`send_file`]). It carries the request's [`Busy`] guard, so the connection's watchdog
/// learns when hyper has finished with it without another boxed wrapper per request.
pub(crate) struct Body {
    pub(crate) kind: Kind,
    pub(crate) busy: Option<Busy>,
}

pub(crate) enum Kind {
    Whole(Option<Bytes>),
    File { file: std::fs::File, left: u64, chunk: usize },
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        Poll::Ready(match &mut this.kind {
            Kind::Whole(bytes) => bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))),
            Kind::File { left: 0, .. } => None,
            Kind::File { file, left, chunk } => {
                let mut buf = vec![0u8; (*chunk).min(*left as usize)];
                Some(match std::io::Read::read(file, &mut buf) {
                    Ok(0) => {
                        *left = 0;
                        Err(std::io::Error::other("file shrank while being sent"))
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        *left -= n as u64;
                        Ok(Frame::data(Bytes::from(buf)))
                    }
                    Err(e) => {
                        *left = 0;
                        Err(e)
                    }
                })
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Whole(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Kind::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match &self.kind {
            Kind::Whole(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Kind::File { left, .. } => *left,
        })
    }
}

pub(crate) fn response(status: StatusCode, kind: Kind) -> Response<Body> {
    let mut r = Response::new(Body { kind, busy: None });
    *r.status_mut() = status;
    r
}

pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(status, Kind::Whole(Some(body.into())))
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    response(status, Kind::Whole(None))
}

/// What a file name must have escaped to be one path segment of a link.
pub(crate) const HREF: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'&')
    .add(b'\'');

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(crate) fn list_dir(dir: &Path, raw_path: &str, head: bool, upload_form: bool) -> Response<Body> {
    let mut names: Vec<(String, bool)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().is_dir()))
            .collect(),
        Err(_) => return full(StatusCode::NOT_FOUND, "not found\n"),
    };
    names.sort();
    let title = html_escape(&percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy());
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><ul>\n"
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&name, HREF).to_string();
        html.push_str(&format!("<li><a href=\"{href}{slash}\">{}{slash}</a></li>\n", html_escape(&name)));
    }
    html.push_str("</ul>\n");
    if upload_form {
        html.push_str(concat!(
            "<form method=\"post\" enctype=\"multipart/form-data\">",
            "<input type=\"file\" name=\"file\" multiple required> <button type=\"submit\">Upload</button></form>\n"
        ));
    }
    html.push_str("</body></html>\n");
    let len = html.len();
    let mut r = if head { empty(StatusCode::OK) } else { full(StatusCode::OK, html) };
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub(crate) fn is_compressible(mime: &mime_guess::Mime) -> bool {
    mime.type_() == "text"
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml" | "svg")
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json")
}

/// Parses one `bytes=` range against `len`: `Ok(None)` when absent or not a single range
/// (serve the whole file), `Err(())` when unsatisfiable.
pub(crate) fn parse_range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Where a response's bytes come from.
pub(crate) enum Source {
    File(std::fs::File),
    Cached(Bytes),
}

// Local file system calls run inline: on page-cached files they take microseconds, while
// smol::fs would hand each one to a thread pool and back (measured: 6x fewer requests/s).
pub(crate) async fn send_file(source: Source, head: &Head, req: &Request<Incoming>) -> std::io::Result<Response<Body>> {
    let len = head.version.len();
    let h = req.headers();
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    let not_modified = not_modified(head, req);
    if not_modified {
        return Ok(head.apply(empty(StatusCode::NOT_MODIFIED)));
    }
    let head_only = req.method() == Method::HEAD;
    let range = match parse_range(get(header::RANGE), len) {
        Ok(r) => r,
        Err(()) => {
            let mut r = head.apply(full(StatusCode::RANGE_NOT_SATISFIABLE, ""));
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let coding = crate::compress::preferred(get(header::ACCEPT_ENCODING)).first().copied();
    if let Some(coding) = coding.filter(|_| range.is_none() && head.compressible && len <= MAX_GZIP && len > 0) {
        // Boxed: its future (a compressor's permit, a blocking task) stays out of the
        // uncompressed answer's, which is moved whole into place per request.
        return Box::pin(send_compressed(source, head, coding, len, head_only)).await;
    }
    let (status, start, count) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, len),
    };
    let r = match source {
        _ if head_only => empty(status),
        Source::Cached(bytes) => {
            response(status, Kind::Whole(Some(bytes.slice(start as usize..(start + count) as usize))))
        }
        Source::File(mut file) => {
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
            let chunk = if req.version() == hyper::Version::HTTP_2 { H2_CHUNK } else { CHUNK };
            response(status, Kind::File { file, left: count, chunk })
        }
    };
    let mut r = head.apply(r);
    let h = r.headers_mut();
    if let Some((s, e)) = range
        && let Ok(v) = HeaderValue::try_from(format!("bytes {s}-{e}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if head.compressible {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    Ok(r)
}

/// A compressible file's answer in `coding`: compressed once per file version and kept with
/// its [`Head`] (up to compress::KEEP_UP_TO), by at most COMPRESSORS at once.
async fn send_compressed(
    source: Source,
    head: &Head,
    coding: crate::compress::Coding,
    len: u64,
    head_only: bool,
) -> std::io::Result<Response<Body>> {
    // Compressed bytes are kept with the file version's head (see compress::KEEP_UP_TO).
    let kept = || head.compressed.borrow().iter().find(|(c, _)| *c == coding).map(|(_, b)| b.clone());
    // At most COMPRESSORS at once (each holds its window: 32 clients asking for the same
    // new file made 32 at once, 106 MiB); the ones that waited find it kept.
    let mut permit = None;
    if kept().is_none() {
        permit = Some(crate::compress::COMPRESSORS.acquire().await);
    }
    let body = match kept() {
        Some(bytes) => bytes,
        None => {
            let data = match source {
                Source::Cached(bytes) => bytes,
                Source::File(mut file) => {
                    let mut data = Vec::with_capacity(len as usize);
                    std::io::Read::read_to_end(&mut file, &mut data)?;
                    data.into()
                }
            };
            let made: Bytes = smol::unblock(move || coding.compress(&data)).await?.into();
            if len <= crate::compress::KEEP_UP_TO && crate::compress::reserve(made.len()) {
                head.compressed.borrow_mut().push((coding, made.clone()));
            }
            made
        }
    };
    drop(permit);
    let n = body.len();
    let mut r = head.apply(if head_only { empty(StatusCode::OK) } else { full(StatusCode::OK, body) });
    let h = r.headers_mut();
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(None, 100), Ok(None));
    }
}
