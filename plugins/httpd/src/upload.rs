//! Uploads (`--upload`): `PUT /dir/name` writes one file (`curl -T`), a multipart `POST` to a
//! folder writes each file of the form into it (a browser's form, `curl -F file=@x`), and
//! folder listings gain an upload form.
//!
//! What keeps it safe, in order:
//! - **Names.** The request path goes through [`relative_path`] (no `..`, NUL, backslash or
//!   encoded `/`). A multipart file name must be one plain segment (no `/`, `\`, NUL or
//!   control character, not `.` or `..`), or the request gets 400: it is refused, not cleaned
//!   up into a name the client did not ask for.
//! - **Place.** The target's folder is opened with `openat2(RESOLVE_BENEATH)` — the kernel's
//!   check that guards reads ([`Root::open_dir`]) — and the file is created and renamed
//!   *relative to that folder's descriptor*, so no symlink swapped in during the upload can
//!   lead the write outside the root. A missing folder is 409 (folders are not created).
//! - **Completeness.** Bytes go to a temporary `.ws-upload-…` file in the same folder, renamed
//!   to the name only once the body ended well. A client that disconnects, a body over
//!   `--max-upload-size` (413: from Content-Length before reading, else while counting) or a
//!   failed write removes the temporary file; the name never shows a partial file.
//! - **No replacing.** Without `--overwrite` the rename is `renameat2(RENAME_NOREPLACE)`
//!   (`link` + `unlink` where the file system lacks it), so a name that exists, even one
//!   created during the upload, is 409. With `--overwrite`, `If-None-Match: *` still asks
//!   for no replacing (412).
//! - **Memory and the server's thread.** The body streams through in the frames hyper reads
//!   (constant memory for any size: a few chunks in flight) and is written by a
//!   blocking-task thread: a disk that stalls under write-back stalls this upload, not every
//!   other client of the thread.
//!
//! Answers: PUT 201 Created with `Location` (204 when it replaced a file, as nginx's DAV
//! module); POST 201 with a line per file, or 303 back to the folder when a browser's form
//! sent it (`Accept: text/html`), so a reload does not post again.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_lite::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::path::{Root, relative_path};
use crate::responses::{Body, empty, full};

/// Chunks read ahead of the file's writer (hyper's chunks are up to a few hundred KiB).
const WRITE_AHEAD: usize = 4;

/// The flags of this module.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct UploadArgs {
    /// Accept uploads: PUT /path writes a file, a multipart POST to a folder writes the
    /// form's files; listings get an upload form
    #[arg(long)]
    upload: bool,
    /// With --upload: replace existing files (409 otherwise)
    #[arg(long, requires = "upload")]
    overwrite: bool,
    /// With --upload: the largest request body accepted, k, m or g suffixes (413 beyond)
    #[arg(long = "max-upload-size", value_name = "BYTES", default_value = "1g",
          value_parser = ws_common::args::byte_count)]
    max_upload_size: u64,
}

/// Uploads, when `--upload` is on.
pub(crate) struct Uploads {
    overwrite: bool,
    max: u64,
}

/// Why a file was not saved.
#[derive(Debug)]
enum Failed {
    TooBig,
    Exists {
        asked: bool,
    },
    NoFolder,
    IsFolder,
    BadName,
    /// The body broke off or is not valid multipart.
    Client(String),
    Disk(std::io::Error),
}

impl From<hyper::Error> for Failed {
    fn from(e: hyper::Error) -> Failed {
        Failed::Client(e.to_string())
    }
}

impl From<multer::Error> for Failed {
    fn from(e: multer::Error) -> Failed {
        match e {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => Failed::TooBig,
            e => Failed::Client(e.to_string()),
        }
    }
}

impl Uploads {
    pub(crate) fn new(a: &UploadArgs) -> Option<Uploads> {
        a.upload.then_some(Uploads { overwrite: a.overwrite, max: a.max_upload_size })
    }

    /// `PUT /dir/name`: the body becomes the file.
    pub(crate) async fn put(&self, root: &Root, req: Request<Incoming>) -> Response<Body> {
        let raw = req.uri().path().to_string();
        let Some(rel) = relative_path(&raw).filter(|r| r != "." && !raw.ends_with('/')) else {
            return self.refusal(Failed::Client("PUT takes a file's path, under the root".into()), &raw);
        };
        let (folder, name) = rel.rsplit_once('/').unwrap_or((".", &rel));
        if self.declared_too_big(&req) {
            return self.refusal(Failed::TooBig, &raw);
        }
        let Some(dir) = root.open_dir(folder) else { return self.refusal(Failed::NoFolder, &raw) };
        let asked = req.headers().get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == b"*");
        let exclusive = asked || !self.overwrite;
        if exclusive && exists(&dir, name) {
            return self.refusal(Failed::Exists { asked }, &raw);
        }
        let body = http_body_util::BodyDataStream::new(req.into_body());
        match save(&dir, name, exclusive, body, self.max).await {
            Ok((n, replaced)) => {
                let mut r = if replaced {
                    empty(StatusCode::NO_CONTENT)
                } else {
                    full(StatusCode::CREATED, format!("created {raw} ({n} bytes)\n"))
                };
                if let Ok(v) = HeaderValue::from_str(&raw) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Err(Failed::Exists { .. }) => self.refusal(Failed::Exists { asked }, &raw),
            Err(e) => self.refusal(e, &raw),
        }
    }

    /// A multipart `POST` to a folder: each file of the form is saved in it.
    pub(crate) async fn post(&self, root: &Root, req: Request<Incoming>) -> Response<Body> {
        let raw = req.uri().path().to_string();
        let Some(rel) = relative_path(&raw) else { return full(StatusCode::NOT_FOUND, "not found\n") };
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Ok(boundary) = multer::parse_boundary(content_type) else {
            return full(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST takes multipart/form-data (a form's files); PUT writes one file\n",
            );
        };
        if self.declared_too_big(&req) {
            return self.refusal(Failed::TooBig, &raw);
        }
        let Some(dir) = root.open_dir(&rel) else { return self.refusal(Failed::NoFolder, &raw) };
        let browser =
            req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
        let folder = if raw.ends_with('/') { raw.clone() } else { format!("{raw}/") };
        let limits = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(self.max));
        let body = http_body_util::BodyDataStream::new(req.into_body());
        let mut form = multer::Multipart::with_constraints(body, boundary, limits);
        let mut saved: Vec<(String, u64)> = Vec::new();
        let failed = loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break None,
                Err(e) => break Some(Failed::from(e)),
            };
            // Fields without a file (text inputs), and a form sent with no file chosen.
            let Some(name) = field.file_name().filter(|n| !n.is_empty()).map(str::to_string) else { continue };
            if !plain_name(&name) {
                break Some(Failed::BadName);
            }
            if !self.overwrite && exists(&dir, &name) {
                break Some(Failed::Exists { asked: false });
            }
            let written = saved.iter().map(|(_, n)| n).sum::<u64>();
            match save(&dir, &name, !self.overwrite, field, self.max.saturating_sub(written)).await {
                Ok((n, _)) => saved.push((name, n)),
                Err(e) => break Some(e),
            }
        };
        let list = |saved: &[(String, u64)]| {
            saved.iter().map(|(name, n)| format!("created {folder}{name} ({n} bytes)\n")).collect::<String>()
        };
        match failed {
            Some(e) => {
                let mut r = self.refusal(e, &raw);
                if !saved.is_empty() {
                    // Say what did land before the failure.
                    let text = format!("{}{}", list(&saved), String::from_utf8_lossy(&body_text(&r)));
                    let status = r.status();
                    r = full(status, text);
                }
                r
            }
            None if saved.is_empty() => full(StatusCode::BAD_REQUEST, "bad request: the form holds no file\n"),
            None if browser => {
                let mut r = empty(StatusCode::SEE_OTHER);
                if let Ok(v) = HeaderValue::from_str(&folder) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            None => full(StatusCode::CREATED, list(&saved)),
        }
    }

    /// A Content-Length over the limit: refused before a byte of the body is read (a client
    /// sending `Expect: 100-continue` never sends it).
    fn declared_too_big(&self, req: &Request<Incoming>) -> bool {
        let len = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        len.is_some_and(|n| n > self.max)
    }

    fn refusal(&self, failed: Failed, raw: &str) -> Response<Body> {
        let (status, text) = match failed {
            Failed::TooBig => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("upload larger than the server's --max-upload-size ({} bytes)\n", self.max),
            ),
            Failed::Exists { asked: true } => (StatusCode::PRECONDITION_FAILED, format!("{raw} exists\n")),
            Failed::Exists { asked: false } => (
                StatusCode::CONFLICT,
                format!("a file of that name exists under {raw} (the server replaces files only with --overwrite)\n"),
            ),
            Failed::NoFolder => (StatusCode::CONFLICT, format!("no folder for {raw} (folders are not created)\n")),
            Failed::IsFolder => (StatusCode::CONFLICT, format!("{raw}: a folder has that name\n")),
            Failed::BadName => (
                StatusCode::BAD_REQUEST,
                "bad request: a file name must be one plain name (no '/', '\\', '..')\n".into(),
            ),
            Failed::Client(e) => (StatusCode::BAD_REQUEST, format!("bad request: {e}\n")),
            Failed::Disk(e) => {
                ws_common::warning!("upload to {raw} not saved: {e}");
                let status = if e.raw_os_error() == Some(Errno::NOSPC.raw_os_error()) {
                    StatusCode::INSUFFICIENT_STORAGE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                (status, "the file could not be written\n".to_string())
            }
        };
        let mut r = full(status, text);
        // The rest of the body is not read: the connection cannot carry another request.
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    }
}

/// The text of a response built by [`full`].
fn body_text(r: &Response<Body>) -> Bytes {
    match &r.body().kind {
        crate::responses::Kind::Whole(Some(b)) => b.clone(),
        _ => Bytes::new(),
    }
}

/// One plain path segment that is safe as a file name.
fn plain_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn exists(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Streams `body` into a temporary file in `dir` and renames it to `name` when the body is
/// whole: `(bytes, replaced an existing file)`.
async fn save<S, E>(dir: &OwnedFd, name: &str, exclusive: bool, body: S, limit: u64) -> Result<(u64, bool), Failed>
where
    S: Stream<Item = Result<Bytes, E>>,
    Failed: From<E>,
{
    let (tmp, file) = create_temp(dir).map_err(Failed::Disk)?;
    let guard = Temp { dir, name: Some(tmp) };
    // The chunks as hyper read them go to a blocking-task thread that writes them: no copy,
    // and the network and the disk work at once, a few chunks apart.
    let (tx, rx) = smol::channel::bounded::<Bytes>(WRITE_AHEAD);
    let writer = smol::unblock(move || {
        let mut file = file;
        while let Ok(chunk) = rx.recv_blocking() {
            std::io::Write::write_all(&mut file, &chunk)?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut body = std::pin::pin!(body);
    let mut n = 0u64;
    let received = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            if n > limit {
                return Err(Failed::TooBig);
            }
            if tx.send(chunk).await.is_err() {
                // The writer stopped on an error: it says which.
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    // Written up to here (or failed), whether or not the body ended well.
    let written = writer.await.map_err(Failed::Disk);
    received?;
    written?;
    let replaced = !exclusive && exists(dir, name);
    guard.rename_to(name, exclusive)?;
    Ok((n, replaced))
}

/// A temporary file in `dir`, removed on drop unless renamed.
struct Temp<'a> {
    dir: &'a OwnedFd,
    name: Option<String>,
}

impl Temp<'_> {
    fn rename_to(mut self, name: &str, exclusive: bool) -> Result<(), Failed> {
        let tmp = self.name.clone().expect("named until renamed");
        // After a rename the temporary name is gone; after a link it stays, removed on drop.
        let mut linked = false;
        let moved = if exclusive {
            match rustix::fs::renameat_with(self.dir, &tmp, self.dir, name, rustix::fs::RenameFlags::NOREPLACE) {
                // File systems without RENAME_NOREPLACE: a hard link fails the same way on an
                // existing name.
                Err(Errno::INVAL) => {
                    linked = true;
                    rustix::fs::linkat(self.dir, &tmp, self.dir, name, AtFlags::empty())
                }
                done => done,
            }
        } else {
            rustix::fs::renameat(self.dir, &tmp, self.dir, name)
        };
        if moved.is_ok() && !linked {
            self.name = None;
        }
        match moved {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(Failed::Exists { asked: false }),
            Err(Errno::ISDIR | Errno::NOTEMPTY) => Err(Failed::IsFolder),
            Err(e) => Err(Failed::Disk(e.into())),
        }
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = &self.name {
            let _ = rustix::fs::unlinkat(self.dir, tmp.as_str(), AtFlags::empty());
        }
    }
}

/// Creates `.ws-upload-<unique>` in `dir`, never following or reusing an existing name.
fn create_temp(dir: &OwnedFd) -> std::io::Result<(String, std::fs::File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    loop {
        let name = format!(".ws-upload-{}-{stamp:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        match rustix::fs::openat(dir, name.as_str(), flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => return Ok((name, std::fs::File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_file_names() {
        for ok in ["a.txt", "read me.md", "ünïcode", "..hidden", ".profile"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "C:\\x\\y", "a\0b", "a\nb", "/etc/passwd"] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }
}
