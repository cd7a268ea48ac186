//! Path safety: a request path becomes a path relative to the root or nothing, and files are
//! opened so that the kernel refuses anything outside the root ([`Root::open_file`]).
//!
//! Files are opened with `O_NONBLOCK`: opening a FIFO for reading otherwise waits for a
//! writer, and the executor thread with it (every other client stalled). Non-blocking, it
//! opens at once; the caller serves regular files only and answers anything else with 404.

use std::borrow::Cow;
use std::path::PathBuf;

/// Decodes a request path into a path relative to the root, or `None` when it must not be
/// served: NUL, backslashes, encoded separators and `..` segments are refused outright.
pub(crate) fn relative_path(raw_path: &str) -> Option<Cow<'_, str>> {
    // The common case, nothing encoded and no empty, `.` or `..` segment, is its own answer.
    if let Some(rest) = raw_path.strip_prefix('/')
        && !rest.is_empty()
        && !rest.bytes().any(|b| matches!(b, b'%' | b'\\' | 0))
        && rest.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
    {
        return Some(Cow::Borrowed(rest));
    }
    let lower = raw_path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw_path).collect::<Vec<u8>>();
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains('\0') || decoded.contains('\\') || !decoded.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => parts.push(s),
        }
    }
    Some(Cow::Owned(if parts.is_empty() { ".".to_string() } else { parts.join("/") }))
}

/// The served folder, and the way files are opened beneath it.
pub(crate) struct Root {
    pub(crate) path: PathBuf,
    pub(crate) dir: std::os::fd::OwnedFd,
    pub(crate) beneath: bool,
}

impl Root {
    pub(crate) fn new(path: PathBuf) -> std::io::Result<Root> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let mut root = Root { path, dir, beneath: true };
        // openat2 arrived in Linux 5.6; without it, fall back to resolving and comparing.
        if root.open_beneath(".").is_err_and(|e| e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error())) {
            root.beneath = false;
        }
        Ok(root)
    }

    fn open_beneath(&self, rel: &str) -> std::io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let fd = rustix::fs::openat2(
            &self.dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Opens `rel` (from [`relative_path`]) if it lies under the root, symlinks resolved,
    /// without blocking (see the module docs): the caller checks what it opened.
    pub(crate) fn open_file(&self, rel: &str) -> Option<std::fs::File> {
        if self.beneath {
            return self.open_beneath(rel).ok();
        }
        let real = self.path.join(rel).canonicalize().ok()?;
        if !real.starts_with(&self.path) {
            return None;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
        std::fs::OpenOptions::new().read(true).custom_flags(nonblock).open(real).ok()
    }

    /// Opens the folder `rel` (from [`relative_path`]) if it lies under the root, as a
    /// descriptor to create and rename files in (uploads), with the same checks as
    /// [`Root::open_file`].
    pub(crate) fn open_dir(&self, rel: &str) -> Option<std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if self.beneath {
            return rustix::fs::openat2(
                &self.dir,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            )
            .ok();
        }
        let real = self.path.join(rel).canonicalize().ok()?;
        if !real.starts_with(&self.path) {
            return None;
        }
        rustix::fs::open(real, flags, Mode::empty()).ok()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_variants_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("site")).unwrap();
        std::fs::create_dir(base.join("site/sub")).unwrap();
        std::fs::write(base.join("site/sub/ok.txt"), "ok").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), base.join("site/escape")).unwrap();
        std::os::unix::fs::symlink("sub/ok.txt", base.join("site/inside")).unwrap();
        for beneath in [true, false] {
            let mut root = Root::new(base.join("site")).unwrap();
            root.beneath = beneath;
            let read = |p: &str| {
                relative_path(p).and_then(|r| root.open_file(&r)).map(|mut f| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                    s
                })
            };
            assert_eq!(read("/sub/ok.txt").as_deref(), Some("ok"));
            assert_eq!(read("/sub/%6fk.txt").as_deref(), Some("ok"));
            assert_eq!(read("/inside").as_deref(), Some("ok"), "a symlink within the root is fine");
            for bad in [
                "/../secret.txt",
                "/sub/../../secret.txt",
                "/%2e%2e/secret.txt",
                "/%2E%2E/secret.txt",
                "/sub%2f..%2f..%2fsecret.txt",
                "/..%5csecret.txt",
                "/sub\\..\\..\\secret.txt",
                "/sub/ok.txt%00.html",
                "/escape",
                "/missing",
            ] {
                assert_eq!(read(bad), None, "{bad} (beneath: {beneath})");
            }
        }
    }

    #[test]
    fn a_fifo_opens_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, base.join("pipe"), rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
        for beneath in [true, false] {
            let mut root = Root::new(base.clone()).unwrap();
            root.beneath = beneath;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(root.open_file("pipe").map(|f| f.metadata().unwrap().is_file())));
            let opened = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("open_file blocked on a FIFO");
            assert_eq!(opened, Some(false), "opened, and not taken for a regular file (beneath: {beneath})");
        }
    }

    #[test]
    fn plain_paths_take_the_short_way_and_the_rest_are_normalised() {
        let rel = |p: &str| relative_path(p).map(|r| (matches!(r, Cow::Borrowed(_)), r.into_owned()));
        assert_eq!(rel("/a/b.txt"), Some((true, "a/b.txt".into())));
        assert_eq!(rel("/a//b.txt"), Some((false, "a/b.txt".into())));
        assert_eq!(rel("/a/./b.txt"), Some((false, "a/b.txt".into())));
        assert_eq!(rel("/dir/"), Some((false, "dir".into())));
        assert_eq!(rel("/"), Some((false, ".".into())));
        assert_eq!(rel("/a%20b"), Some((false, "a b".into())));
        assert_eq!(rel("/a/../b"), None);
        assert_eq!(rel("a/b"), None);
    }
}
