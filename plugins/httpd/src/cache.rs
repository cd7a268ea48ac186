//! Per-file-version response headers, and the bytes of small files, kept between requests
//! ([`Heads`]); a file version is its [`Version`] (device, inode, size, times).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::Response;
use hyper::header::{self, HeaderValue};

use crate::path::Root;
use crate::responses::{Body, is_compressible};

/// What a file version's response headers say, and for a small file its bytes.
/// Formatting the ETag and the date and guessing the type from the name took a fifth of
/// httpd's user time per 1 KiB request (perf), and opening, reading and closing the file
/// three of its seven system calls; so they are done once per file version.
pub(crate) struct Head {
    pub(crate) version: Version,
    pub(crate) etag: HeaderValue,
    pub(crate) last_modified: HeaderValue,
    pub(crate) modified: SystemTime,
    pub(crate) content_type: HeaderValue,
    pub(crate) compressible: bool,
    /// The whole file, when it is at most [`SMALL`] bytes and was read whole.
    pub(crate) body: Option<Bytes>,
    /// That small file compressed, by coding, as first made (see [`crate::compress`]).
    pub(crate) compressed: std::cell::RefCell<Vec<(crate::compress::Coding, Bytes)>>,
    /// The kernel reports this file's changes ([`crate::fresh`]): no `stat` per request.
    pub(crate) watched: bool,
}

/// Device, inode, size, and modification and change times (s, ns): a file version. The
/// change time moves on any write, rename onto the name or permission change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version([i64; 7]);

impl Version {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Version {
        use std::os::unix::fs::MetadataExt;
        Version([
            meta.dev() as i64,
            meta.ino() as i64,
            meta.len() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ])
    }

    pub(crate) fn len(&self) -> u64 {
        self.0[2] as u64
    }

    // The fields' types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn of_stat(st: &rustix::fs::Stat) -> Version {
        Version([
            st.st_dev as i64,
            st.st_ino as i64,
            st.st_size as i64,
            st.st_mtime as i64,
            st.st_mtime_nsec as i64,
            st.st_ctime as i64,
            st.st_ctime_nsec as i64,
        ])
    }
}

impl Head {
    pub(crate) fn new(name: &str, meta: &std::fs::Metadata) -> Head {
        let value = |s: String| HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""));
        let since = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).duration_since(SystemTime::UNIX_EPOCH);
        let since = since.unwrap_or_default();
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs());
        let mime = mime_guess::from_path(name).first_or_octet_stream();
        let content_type = if mime.type_() == "text" && mime.get_param("charset").is_none() {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        Head {
            version: Version::of(meta),
            etag: value(format!("\"{:x}-{:x}\"", meta.len(), since.as_nanos())),
            last_modified: value(httpdate::fmt_http_date(modified)),
            modified,
            content_type: value(content_type),
            compressible: is_compressible(&mime),
            body: None,
            compressed: Default::default(),
            watched: false,
        }
    }

    /// Adds the headers every answer about this file has.
    pub(crate) fn apply(&self, mut r: Response<Body>) -> Response<Body> {
        let h = r.headers_mut();
        // Room for these, Content-Length, Server and a few of --cors/-H/--cache-control
        // without the map growing per request.
        h.reserve(12);
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::LAST_MODIFIED, self.last_modified.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(header::CONTENT_TYPE, self.content_type.clone());
        r
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        crate::compress::release(self.compressed.get_mut().iter().map(|(_, b)| b.len()).sum());
    }
}

/// Files up to this size are kept in memory with their [`Head`].
pub(crate) const SMALL: u64 = 64 * 1024;
/// At most this many [`Head`]s and this many bytes of small files are kept; past either,
/// the cache starts again empty.
pub(crate) const MAX_HEADS: usize = 4096;
pub(crate) const MAX_CACHED_BYTES: usize = 16 << 20;

/// The [`Head`]s of recently served files, by the name they were served under (the type
/// comes from it). An entry is used only while the file is the same [`Version`]: a watched
/// entry ([`crate::fresh`]) until the kernel reports a change to the file or a folder on its
/// way, any other after a `stat` per request shows the same version. Either way a changed
/// file is answered from the disk at once.
///
/// Safety of the short way ([`Heads::fresh`]): the `stat` follows symlinks, without
/// `RESOLVE_BENEATH`; but it only ever answers with bytes that were read through
/// [`Root::open_file`], and only when the name still leads to that very inode, unchanged.
/// A name that now leads anywhere else misses and takes the checked way.
#[derive(Default)]
pub(crate) struct Heads {
    pub(crate) map: HashMap<String, Rc<Head>>,
    pub(crate) cached_bytes: usize,
    /// This worker's inotify watcher, made at the first small file (on the worker's loop).
    watcher: Option<crate::fresh::Watcher>,
    watcher_tried: bool,
}

impl Heads {
    /// The entry for `name` and the file's bytes, if it holds them and the file is
    /// unchanged: a flag test when watched, else one `stat` — instead of open, `fstat`,
    /// read and close.
    pub(crate) fn fresh(&mut self, root: &Root, name: &str) -> Option<(Rc<Head>, Bytes)> {
        self.forget_changed();
        let head = self.map.get(name)?;
        let body = head.body.clone()?;
        if head.watched {
            return Some((head.clone(), body));
        }
        let st = rustix::fs::statat(&root.dir, name, rustix::fs::AtFlags::empty()).ok()?;
        (Version::of_stat(&st) == head.version).then(|| (head.clone(), body))
    }

    /// Drops the entries the kernel reported changes for.
    fn forget_changed(&mut self) {
        let Some(w) = &mut self.watcher else { return };
        match w.changed() {
            crate::fresh::Changes::None => {}
            crate::fresh::Changes::Names(names) => {
                for n in names {
                    if let Some(old) = self.map.remove(&n) {
                        self.cached_bytes -= old.body.as_ref().map_or(0, Bytes::len);
                    }
                }
            }
            crate::fresh::Changes::All => self.clear(),
        }
    }

    /// Empties the cache; a new watcher replaces the old one and its watches.
    fn clear(&mut self) {
        self.map.clear();
        self.cached_bytes = 0;
        if self.watcher.take().is_some() {
            self.watcher = crate::fresh::Watcher::new();
        }
    }

    /// The entry for this version of `name`, made (and `file` read, if small) when missing.
    pub(crate) fn get(
        &mut self,
        root: &Root,
        name: &str,
        file: &mut std::fs::File,
        meta: &std::fs::Metadata,
    ) -> Rc<Head> {
        self.forget_changed();
        let version = Version::of(meta);
        if let Some(head) = self.map.get(name)
            && head.version == version
        {
            return head.clone();
        }
        let mut head = Head::new(name, meta);
        if meta.len() <= SMALL {
            head.body = read_whole(file, meta.len() as usize)
                .filter(|_| file.metadata().is_ok_and(|m| Version::of(&m) == version));
        }
        let size = head.body.as_ref().map_or(0, Bytes::len);
        if self.map.len() >= MAX_HEADS || self.cached_bytes + size > MAX_CACHED_BYTES {
            self.clear();
        }
        if head.body.is_some() {
            if !self.watcher_tried {
                self.watcher_tried = true;
                self.watcher = crate::fresh::Watcher::new();
            }
            head.watched = self.watcher.as_mut().is_some_and(|w| w.watch(root, name, file, version));
        }
        let head = Rc::new(head);
        if let Some(old) = self.map.insert(name.to_string(), head.clone()) {
            self.cached_bytes -= old.body.as_ref().map_or(0, Bytes::len);
        }
        self.cached_bytes += size;
        head
    }
}

/// Reads exactly `len` bytes from the start of `file`, or `None` (it changed size).
fn read_whole(file: &mut std::fs::File, len: usize) -> Option<Bytes> {
    let mut buf = vec![0u8; len];
    std::io::Read::read_exact(file, &mut buf).ok()?;
    let mut probe = [0u8; 1];
    match std::io::Read::read(file, &mut probe) {
        Ok(0) => Some(Bytes::from(buf)),
        _ => None,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_gets_new_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page.html");
        std::fs::write(&path, "one").unwrap();
        let root = Root::new(dir.path().canonicalize().unwrap()).unwrap();
        let mut heads = Heads::default();
        let get = |heads: &mut Heads, name: &str| {
            let mut file = root.open_file("page.html").unwrap();
            let meta = file.metadata().unwrap();
            heads.get(&root, name, &mut file, &meta)
        };
        assert!(heads.fresh(&root, "page.html").is_none(), "nothing cached yet");
        let first = get(&mut heads, "page.html");
        assert_eq!(first.content_type, "text/html; charset=utf-8");
        assert_eq!(first.body.as_deref(), Some(&b"one"[..]));
        let (again, bytes) = heads.fresh(&root, "page.html").expect("unchanged: served from memory");
        assert!(Rc::ptr_eq(&first, &again), "the same version reuses its headers and bytes");
        assert_eq!(&bytes[..], b"one");
        std::fs::write(&path, "two").unwrap();
        assert!(heads.fresh(&root, "page.html").is_none(), "same size, rewritten: not fresh");
        let changed = get(&mut heads, "page.html");
        assert_eq!(changed.body.as_deref(), Some(&b"two"[..]));
        let other_name = get(&mut heads, "page.txt");
        assert_eq!(other_name.content_type, "text/plain; charset=utf-8", "the type follows the name served");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("elsewhere"), "other").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        assert!(heads.fresh(&root, "page.html").is_none(), "the name leads to another inode now");
    }

    /// Issue 23: on a worker's loop, small files are watched (no `stat` per request) and
    /// every way a name can come to mean other bytes drops the entry.
    #[test]
    fn watched_entries_drop_on_every_kind_of_change() {
        use std::fs;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        fs::create_dir(base.join("a")).unwrap();
        fs::write(base.join("a/page.html"), "one").unwrap();
        fs::write(base.join("elsewhere"), "away").unwrap();
        std::os::unix::fs::symlink("elsewhere", base.join("linked.html")).unwrap();
        let root = Root::new(base.clone()).unwrap();
        ws_common::runtime::block_on(|_| async move {
            let mut heads = Heads::default();
            let cache = |heads: &mut Heads, name: &str| {
                let mut file = root.open_file(name).unwrap();
                let meta = file.metadata().unwrap();
                heads.get(&root, name, &mut file, &meta)
            };
            // The loop takes in the kernel's events when it next waits.
            let turn = || ws_common::runtime::Timer::after(Duration::from_millis(5));
            let changes: [(&str, &dyn Fn()); 5] = [
                ("rewritten, same size", &|| fs::write(base.join("a/page.html"), "two").unwrap()),
                ("touched", &|| {
                    let f = fs::File::options().append(true).open(base.join("a/page.html")).unwrap();
                    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1000)).unwrap();
                }),
                ("replaced by a rename", &|| {
                    fs::write(base.join("a/.tmp"), "new").unwrap();
                    fs::rename(base.join("a/.tmp"), base.join("a/page.html")).unwrap();
                }),
                ("its folder moved away and made anew", &|| {
                    fs::rename(base.join("a"), base.join("old")).unwrap();
                    fs::create_dir(base.join("a")).unwrap();
                    fs::write(base.join("a/page.html"), "fresh").unwrap();
                }),
                ("deleted", &|| fs::remove_file(base.join("a/page.html")).unwrap()),
            ];
            for (how, change) in changes {
                if root.open_file("a/page.html").is_none() {
                    fs::write(base.join("a/page.html"), "again").unwrap();
                }
                let head = cache(&mut heads, "a/page.html");
                assert!(head.watched, "{how}: a plain small file is watched");
                turn().await;
                assert!(heads.fresh(&root, "a/page.html").is_some(), "{how}: unchanged, served from memory");
                change();
                turn().await;
                assert!(heads.fresh(&root, "a/page.html").is_none(), "{how}: still served from memory");
            }
            let linked = cache(&mut heads, "linked.html");
            assert!(!linked.watched, "a file reached through a symlink is checked per request");
        });
    }
}
