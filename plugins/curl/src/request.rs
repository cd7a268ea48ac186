//! The request: its body from `-d`, `-F` and `--data-binary`, its head, and the sender of
//! one connection (HTTP/1.1 or HTTP/2).

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request};
use ws_common::url::Url;
use ws_common::ws::ConnectError;
use ws_plugin_api::Error;

use crate::args::{Args, code, fail};

/// The request body, its content type, and for --json the Accept it implies.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: Option<String>,
    pub(crate) accept: Option<&'static str>,
    /// `-T`: the file (or `-` for stdin) streamed as the body instead of `bytes`.
    pub(crate) upload: Option<std::path::PathBuf>,
}

/// The bytes of a -d style argument: @file (or @- for stdin) read, else the text itself.
fn read_arg(raw: &str, strip_newlines: bool) -> Result<Vec<u8>, Error> {
    let Some(path) = raw.strip_prefix('@') else { return Ok(raw.as_bytes().to_vec()) };
    let mut bytes = if path == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map(|_| b)
    } else {
        std::fs::read(path)
    }
    .map_err(|e| fail(code::READ, format!("cannot read {path}: {e}")))?;
    if strip_newlines {
        bytes.retain(|b| *b != b'\r' && *b != b'\n');
    }
    Ok(bytes)
}

/// One --data-urlencode argument, as curl encodes its five forms.
fn urlencoded(raw: &str) -> Result<Vec<u8>, Error> {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let enc = |b: &[u8]| percent_encoding::percent_encode(b, SET).to_string().into_bytes();
    let (name, value) = match (raw.find('='), raw.find('@')) {
        (Some(eq), at) if at.is_none_or(|at| eq < at) => (&raw[..eq], raw.as_bytes()[eq + 1..].to_vec()),
        (_, Some(at)) => (&raw[..at], read_arg(&raw[at..], false)?),
        _ => ("", raw.as_bytes().to_vec()),
    };
    let mut out = if name.is_empty() { Vec::new() } else { format!("{name}=").into_bytes() };
    out.extend(enc(&value));
    Ok(out)
}

/// The type curl gives a file part by its name's extension (curl's own short table, not a
/// full MIME database: anything else is application/octet-stream, as in curl).
fn guess_type(path: &str) -> &'static str {
    const TABLE: [(&str, &str); 10] = [
        (".gif", "image/gif"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".png", "image/png"),
        (".svg", "image/svg+xml"),
        (".txt", "text/plain"),
        (".htm", "text/html"),
        (".html", "text/html"),
        (".pdf", "application/pdf"),
        (".xml", "application/xml"),
    ];
    let lower = path.to_ascii_lowercase();
    TABLE.iter().find(|(ext, _)| lower.ends_with(ext)).map_or("application/octet-stream", |(_, t)| t)
}

/// A `-F` value with curl's `;type=` and `;filename=` (a leading double-quoted value may
/// hold `;`).
#[derive(Debug, PartialEq, Eq)]
struct FormField<'a> {
    value: &'a str,
    ctype: Option<&'a str>,
    filename: Option<&'a str>,
}

impl<'a> FormField<'a> {
    fn parse(raw: &'a str) -> FormField<'a> {
        let (value, rest) = match raw.strip_prefix('"').and_then(|r| r.find('"').map(|end| (r, end))) {
            Some((r, end)) => (&r[..end], r[end + 1..].trim_start_matches(';')),
            None => raw.split_once(';').unwrap_or((raw, "")),
        };
        let mut field = FormField { value, ctype: None, filename: None };
        for param in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(t) = param.strip_prefix("type=") {
                field.ctype = Some(t);
            } else if let Some(f) = param.strip_prefix("filename=") {
                field.filename = Some(f.trim_matches('"'));
            }
        }
        field
    }
}

pub(crate) fn split_pair(raw: &str) -> Result<(&str, &str), Error> {
    raw.split_once('=').ok_or_else(|| Error::usage(format!("form field '{raw}' is not name=value")))
}

pub(crate) fn build_body(args: &Args) -> Result<Option<Body>, Error> {
    if let Some(path) = &args.upload_file {
        return Ok(Some(Body { bytes: Vec::new(), content_type: None, accept: None, upload: Some(path.clone()) }));
    }
    if let Some(raw) = &args.data_binary {
        let bytes = read_arg(raw, false)?;
        return Ok(Some(Body {
            bytes,
            content_type: Some("application/x-www-form-urlencoded".into()),
            accept: None,
            upload: None,
        }));
    }
    if !args.json.is_empty() {
        let mut bytes = Vec::new();
        for raw in &args.json {
            bytes.extend(read_arg(raw, false)?);
        }
        return Ok(Some(Body {
            bytes,
            content_type: Some("application/json".into()),
            accept: Some("application/json"),
            upload: None,
        }));
    }
    if !args.form.is_empty() {
        let boundary = format!("------------------------{}", &ws_common::transfer::new_id()[..16]);
        let mut out = Vec::new();
        for raw in &args.form {
            let (k, v) = split_pair(raw)?;
            let field = FormField::parse(v);
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match field.value.strip_prefix('@') {
                Some(path) => {
                    let data = read_arg(field.value, false)?;
                    let name = field.filename.map(str::to_string).unwrap_or_else(|| {
                        std::path::Path::new(path)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    let ctype = field.ctype.unwrap_or_else(|| guess_type(path));
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n")
                            .as_bytes(),
                    );
                    out.extend_from_slice(&data);
                }
                None => {
                    // `<file`: the file's content as a plain field.
                    let data = match field.value.strip_prefix('<') {
                        Some(path) => read_arg(&format!("@{path}"), false)?,
                        None => field.value.as_bytes().to_vec(),
                    };
                    let mut head = format!("Content-Disposition: form-data; name=\"{k}\"");
                    if let Some(name) = field.filename {
                        head.push_str(&format!("; filename=\"{name}\""));
                    }
                    if let Some(ctype) = field.ctype {
                        head.push_str(&format!("\r\nContent-Type: {ctype}"));
                    }
                    out.extend_from_slice(format!("{head}\r\n\r\n").as_bytes());
                    out.extend_from_slice(&data);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        for raw in &args.data {
            let (k, v) = split_pair(raw)?;
            out.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
            );
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        return Ok(Some(Body {
            bytes: out,
            content_type: Some(format!("multipart/form-data; boundary={boundary}")),
            accept: None,
            upload: None,
        }));
    }
    let mut parts = Vec::new();
    for raw in &args.data {
        parts.push(read_arg(raw, true)?);
    }
    parts.extend(args.data_raw.iter().map(|raw| raw.as_bytes().to_vec()));
    for raw in &args.data_urlencode {
        parts.push(urlencoded(raw)?);
    }
    if !parts.is_empty() {
        return Ok(Some(Body {
            bytes: parts.join(&b'&'),
            content_type: Some("application/x-www-form-urlencoded".into()),
            accept: None,
            upload: None,
        }));
    }
    Ok(None)
}

pub(crate) fn connect_error(e: ConnectError, timeout: f64) -> Error {
    match e {
        ConnectError::Resolve { .. } => fail(code::RESOLVE, e),
        ConnectError::Connect { .. } => fail(code::CONNECT, e),
        ConnectError::Timeout(_) => fail(code::TIMEOUT, format!("connection timed out after {timeout} s")),
        ConnectError::Tls { ref reason, .. } if reason.to_ascii_lowercase().contains("certificate") => {
            fail(code::CERTIFICATE, e)
        }
        ConnectError::Tls { .. } => fail(code::TLS, e),
        // As curl: 7 when the proxy cannot be reached, 56 when it refuses the CONNECT, 97
        // for a SOCKS failure.
        ConnectError::Proxy(ref m) if m.starts_with("cannot connect to proxy") => fail(code::CONNECT, e),
        ConnectError::Proxy(ref m) if m.starts_with("SOCKS5") => fail(code::PROXY, e),
        ConnectError::Proxy(_) => fail(code::PEER_FAILED, e),
        other => fail(code::CONNECT, other),
    }
}

/// One connection's request sender, by protocol.
pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

impl Sender {
    pub(crate) async fn send_request(
        &mut self,
        req: Request<ReqBody>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// Turns `req` into the absolute form an HTTP proxy forwards (`GET http://host/path`), with
/// the proxy's credentials when it has some; `Host` stays the target's.
pub(crate) fn through_proxy(req: &mut Request<ReqBody>, url: &Url, proxy: &ws_common::proxy::Proxy) {
    let mut absolute = url.clone();
    absolute.set_fragment(None);
    // Credentials in the URL went into Authorization (build_request); never into the line.
    let _ = absolute.set_username("");
    let _ = absolute.set_password(None);
    if let Ok(uri) = absolute.as_str().parse() {
        *req.uri_mut() = uri;
    }
    if let Some(v) = proxy.authorization().and_then(|v| HeaderValue::from_str(&v).ok()) {
        req.headers_mut().insert(header::PROXY_AUTHORIZATION, v);
    }
}

pub(crate) fn build_request(
    args: &Args,
    url: &Url,
    method: &Method,
    headers: &[(String, String)],
    body: Option<&Body>,
    h2: bool,
    credentials: bool,
) -> Result<Request<ReqBody>, Error> {
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    // HTTP/2 carries the scheme and authority in the request itself (:scheme, :authority),
    // not in a Host header.
    let host_header = ws_common::url::host_header(url);
    if h2 {
        path = format!("{}://{host_header}{path}", url.scheme());
    }
    let gzip = args.compress_request && body.is_some() && *method != Method::HEAD;
    let req_body = match body {
        _ if *method == Method::HEAD => ReqBody::Bytes(None),
        Some(Body { upload: Some(path), .. }) => ReqBody::upload(path, gzip)?,
        Some(b) if gzip => ReqBody::Bytes(Some(Bytes::from(gzipped(&b.bytes)))),
        Some(b) => ReqBody::Bytes(Some(Bytes::from(b.bytes.clone()))),
        None => ReqBody::Bytes(None),
    };
    let mut req = Request::builder().method(method.clone()).uri(path).body(req_body).map_err(|e| fail(code::URL, e))?;
    let set = |h: &mut hyper::HeaderMap, k: HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    if h2 {
        *req.version_mut() = hyper::Version::HTTP_2;
    } else {
        set(req.headers_mut(), header::HOST, &host_header);
    }
    let h = req.headers_mut();
    set(h, header::USER_AGENT, args.user_agent.as_deref().unwrap_or(concat!("ws-curl/", env!("CARGO_PKG_VERSION"))));
    if let Some(referer) = &args.referer {
        set(h, header::REFERER, referer);
    }
    if let Some(range) = &args.range {
        set(h, header::RANGE, &format!("bytes={range}"));
    }
    if args.resume_from > 0 {
        set(h, header::RANGE, &format!("bytes={}-", args.resume_from));
    }
    set(h, header::ACCEPT, body.and_then(|b| b.accept).unwrap_or("*/*"));
    if args.compressed {
        set(h, header::ACCEPT_ENCODING, "gzip, deflate");
    }
    // -u for its origin; else the URL's own user:password; else the netrc entry of this
    // request's host (looked up again on each hop, so it never leaves its host).
    let from_url = (!url.username().is_empty()).then(|| {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")))
    });
    let user = args
        .user
        .clone()
        .filter(|_| credentials)
        .or(from_url)
        .or_else(|| args.netrc_user(url.host_str().unwrap_or("")));
    if let Some(user) = user.as_ref() {
        use base64::Engine;
        set(h, header::AUTHORIZATION, &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user)));
    }
    if let Some(b) = body
        && let Some(ct) = &b.content_type
    {
        set(h, header::CONTENT_TYPE, ct);
    }
    if gzip {
        set(h, header::CONTENT_ENCODING, "gzip");
    }
    for (k, v) in headers.iter().filter(|(k, _)| credentials || !crate::redirects::is_credential(k)) {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::usage(format!("bad header {k}: {e}")))?;
        set(h, name, v);
    }
    Ok(req)
}

/// `--compress_request`: the body gzipped (level 6, as the reference's zlib default).
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

pub(crate) fn request_size(req: &Request<ReqBody>) -> usize {
    let head: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let body = hyper::body::Body::size_hint(req.body()).exact().unwrap_or(0) as usize;
    req.method().as_str().len() + req.uri().to_string().len() + 12 + head + 2 + body
}

/// The piece a `-T` upload is read and sent in: 64 KiB pieces made it 0.87× curl's speed
/// (a read and a write system call each); 512 KiB pieces keep the memory small and the
/// calls few.
const UPLOAD_CHUNK: usize = 512 * 1024;

/// A request body: bytes in memory, or a file (`-T`) read in [`UPLOAD_CHUNK`] pieces as
/// hyper asks for them, so an upload of any size takes constant memory. The reads are inline, as curl's
/// are: this client has nothing else to do meanwhile.
pub(crate) enum ReqBody {
    Bytes(Option<Bytes>),
    Reader { source: Box<dyn std::io::Read + Send>, left: Option<u64> },
}

impl ReqBody {
    /// `-T FILE`, or `-T -` for stdin (length unknown: chunked over HTTP/1.1); with `gzip`,
    /// compressed as it is read (length unknown too).
    fn upload(path: &std::path::Path, gzip: bool) -> Result<ReqBody, Error> {
        let (source, len): (Box<dyn std::io::Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| fail(code::READ, format!("cannot read {}: {e}", path.display())))?;
            let len = file.metadata().map(|m| m.len()).ok();
            (Box::new(file), len)
        };
        if gzip {
            let enc = flate2::read::GzEncoder::new(source, flate2::Compression::new(6));
            return Ok(ReqBody::Reader { source: Box::new(enc), left: None });
        }
        Ok(ReqBody::Reader { source, left: len })
    }
}

impl hyper::body::Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<hyper::body::Frame<Bytes>>>> {
        let frame = match self.get_mut() {
            ReqBody::Bytes(b) => b.take().filter(|b| !b.is_empty()).map(|b| Ok(hyper::body::Frame::data(b))),
            ReqBody::Reader { left: Some(0), .. } => None,
            ReqBody::Reader { source, left } => {
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                let want = left.map_or(buf.len(), |l| buf.len().min(l as usize));
                match source.read(&mut buf[..want]) {
                    Ok(0) if left.is_some() => {
                        *left = Some(0);
                        Some(Err(std::io::Error::other("the file shrank while being sent")))
                    }
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        if let Some(l) = left {
                            *l -= n as u64;
                        }
                        Some(Ok(hyper::body::Frame::data(Bytes::from(buf))))
                    }
                    Err(e) => Some(Err(e)),
                }
            }
        };
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
            ReqBody::Reader { left, .. } => *left == Some(0),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReqBody::Bytes(b) => hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Reader { left: Some(l), .. } => hyper::body::SizeHint::with_exact(*l),
            ReqBody::Reader { left: None, .. } => hyper::body::SizeHint::default(),
        }
    }
}

/// As curl prints them: `HTTP/1.1`, `HTTP/2`.
pub(crate) fn version_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `-v`: the request as sent (the target in absolute form to a proxy), credentials hidden.
pub(crate) fn verbose_request(req: &Request<ReqBody>) {
    let absolute = req.version() != hyper::Version::HTTP_2 && req.uri().scheme().is_some();
    let target = if absolute {
        req.uri().to_string()
    } else {
        req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string()
    };
    eprintln!("> {} {target} {}", req.method(), version_name(req.version()));
    for (k, v) in req.headers() {
        let secret = k == header::AUTHORIZATION || k == header::PROXY_AUTHORIZATION;
        let value = if secret {
            // The scheme, not the credentials.
            let v = String::from_utf8_lossy(v.as_bytes());
            format!("{} [hidden]", v.split(' ').next().unwrap_or(""))
        } else {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        };
        eprintln!("> {k}: {value}");
    }
    eprintln!(">");
}

/// The most bytes read on an HTTP/1.1 connection before a response head is in, 1xx
/// responses included (curl allows 300 kB of headers); a server sending `100 Continue`
/// forever would otherwise keep the client reading until `--max-time`. hyper may read up to
/// two buffers of the body before the request learns that the head is in: they count too.
pub(crate) const MAX_HEAD: u64 = 300 * 1024 + 2 * crate::READ_BUF as u64;

/// A connection that fails its reads once more than [`MAX_HEAD`] bytes arrived while
/// [`HeadLimit::armed`] (until the response head is in).
pub(crate) struct HeadLimit<S> {
    inner: S,
    pub(crate) state: std::rc::Rc<HeadState>,
}

/// Shared between the connection and the request: bytes read, and whether still counting.
#[derive(Debug, Default)]
pub(crate) struct HeadState {
    read: std::cell::Cell<u64>,
    pub(crate) done: std::cell::Cell<bool>,
}

impl<S> HeadLimit<S> {
    pub(crate) fn new(inner: S) -> Self {
        HeadLimit { inner, state: Default::default() }
    }
}

impl<S: futures_lite::AsyncRead + Unpin> futures_lite::AsyncRead for HeadLimit<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let st = self.state.clone();
        if !st.done.get() && st.read.get() > MAX_HEAD {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "no response head within {MAX_HEAD} bytes (endless 1xx responses?)"
            ))));
        }
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            st.read.set(st.read.get() + *n as u64);
        }
        r
    }
}

impl<S: futures_lite::AsyncWrite + Unpin> futures_lite::AsyncWrite for HeadLimit<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_take_curls_type_and_filename() {
        let f = FormField::parse("@photo.jpg;type=image/jpeg;filename=me.jpg");
        assert_eq!(f, FormField { value: "@photo.jpg", ctype: Some("image/jpeg"), filename: Some("me.jpg") });
        let f = FormField::parse("\"a;b\";type=text/x");
        assert_eq!(f, FormField { value: "a;b", ctype: Some("text/x"), filename: None });
        assert_eq!(FormField::parse("plain").value, "plain");
        assert_eq!(guess_type("a/B.TXT"), "text/plain");
        assert_eq!(guess_type("x.json"), "application/octet-stream");
    }
}
