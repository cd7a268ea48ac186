//! What `gzip` and `gunzip` share: byte counts and the reference's checksum (djb2 over
//! *signed* bytes, [`crate::pdu::Djb2::update_signed`]) taken as the bytes stream past, and
//! the output file: written under a temporary name beside the target, renamed only when
//! complete, never replacing an existing file unless asked (`--force`), with the input's
//! permissions. Not synced to disk before the rename, as GNU gzip does not by default
//! (the sync made `gunzip` of 512 MiB up to 0.9 s slower than GNU's, and noisier).

use std::io::{self, Read, Write};
use std::path::Path;

use crate::pdu::Djb2;

/// How many bytes went by and their checksum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub size: u64,
    pub cksum: Djb2,
}

impl Tally {
    fn add(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.cksum.update_signed(bytes);
    }
}

/// A reader that tallies what is read through it.
#[derive(Debug)]
pub struct TallyReader<R> {
    pub inner: R,
    pub tally: Tally,
}

impl<R: Read> TallyReader<R> {
    pub fn new(inner: R) -> Self {
        TallyReader { inner, tally: Tally::default() }
    }
}

impl<R: Read> Read for TallyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.add(&buf[..n]);
        Ok(n)
    }
}

/// A writer that tallies what is written through it.
#[derive(Debug)]
pub struct TallyWriter<W> {
    pub inner: W,
    pub tally: Tally,
}

impl<W: Write> TallyWriter<W> {
    pub fn new(inner: W) -> Self {
        TallyWriter { inner, tally: Tally::default() }
    }
}

impl<W: Write> Write for TallyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.tally.add(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and writes go in pieces of this size.
pub const CHUNK: usize = 256 * 1024;

/// Why an output could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0} already exists (--force replaces it)")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// A temporary file beside `target`, refused up front when `target` exists and `force` is
/// off (checked again, without a race, at [`commit`]).
pub fn start_output(target: &Path, force: bool) -> Result<tempfile::NamedTempFile, OutputError> {
    let name = target.display().to_string();
    if !force && target.symlink_metadata().is_ok() {
        return Err(OutputError::Exists(name));
    }
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::transfer::partial_file(dir, ".ws-gz-").map_err(|source| OutputError::Io { path: name, source })
}

/// Gives the finished temporary file `input`'s permissions and renames it to `target`
/// (without replacing an existing file unless `force`).
pub fn commit(tmp: tempfile::NamedTempFile, input: &Path, target: &Path, force: bool) -> Result<(), OutputError> {
    let name = target.display().to_string();
    let io = |source: io::Error| OutputError::Io { path: name.clone(), source };
    if let Ok(meta) = std::fs::metadata(input) {
        std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(io)?;
    }
    let persisted = if force { tmp.persist(target) } else { tmp.persist_noclobber(target) };
    persisted.map(drop).map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => OutputError::Exists(name.clone()),
        _ => io(e.error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_target_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (input, target) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&input, "x").unwrap();
        std::fs::write(&target, "old").unwrap();
        assert!(matches!(start_output(&target, false), Err(OutputError::Exists(_))));
        let mut tmp = start_output(&target, true).unwrap();
        tmp.write_all(b"new").unwrap();
        commit(tmp, &input, &target, true).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn tallies_count_and_hash_what_passes() {
        let mut w = TallyWriter::new(Vec::new());
        w.write_all(&[1, 0xff]).unwrap();
        assert_eq!(w.tally.size, 2);
        let mut h = Djb2::default();
        h.update_signed(&[1, 0xff]);
        assert_eq!(w.tally.cksum.0, h.0);
    }
}
