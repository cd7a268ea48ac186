//! Freshness of cached small files without a system call per request: the kernel tells
//! (inotify) when a cached file or a folder on its way changes, and the entry is dropped.
//!
//! One `stat` per request was the price of never serving a changed file (nginx's
//! `open_file_cache` instead trusts a descriptor for `open_file_cache_valid`, 30 s here);
//! it was one of three system calls per keep-alive request (issue 23). An entry is now
//! *watched* when it is cached:
//!
//! - the file itself (its inode, through `/proc/self/fd`): written, truncated, touched,
//!   `chmod`ed, its link count changed (replaced by a rename, deleted), moved;
//! - every folder from the root down to it: an entry created, deleted or renamed in it
//!   (the name now leads elsewhere), the folder itself moved, deleted or `chmod`ed.
//!
//! Only a file reached without symlinks is watched (its real path is the root's plus the
//! name): a symlink's target could change out of sight. Others keep the `stat` per request.
//! After the watches are set the name is `stat`ed once more, so a change in between is seen.
//!
//! The inotify descriptor sits in the worker's event loop, but no task reads it: the loop
//! marks it readable when an event arrives, and [`Watcher::changed`] — a flag test — reads
//! the events only then, before a cached answer is given. A change made before a request was
//! sent is therefore seen by that request, except for a request read in the same loop turn
//! as the change's event arrived without an event of its own (a pipelined one): it may get
//! the version it would have got a few microseconds earlier.
//!
//! What inotify cannot see: writes through a shared writable `mmap`, and changes made on
//! another machine to a network file system. The queue overflowing drops every entry.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use ws_common::runtime::Async;

use crate::path::Root;

/// A worker's inotify descriptor and which cached names each watch guards.
pub(crate) struct Watcher {
    fd: Async<OwnedFd>,
    names: HashMap<i32, Vec<String>>,
}

/// What happened since the last look.
pub(crate) enum Changes {
    None,
    /// These names' entries are stale.
    Names(Vec<String>),
    /// Events were lost (or inotify failed): every entry is stale.
    All,
}

impl Watcher {
    /// A watcher on this thread's event loop, or `None` (no loop, or no inotify left: the
    /// cache then `stat`s per request as before).
    pub(crate) fn new() -> Option<Watcher> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        Some(Watcher { fd: Async::new_nonblocking(fd).ok()?, names: HashMap::new() })
    }

    /// The names whose entries changed; a flag test unless the loop saw an event.
    pub(crate) fn changed(&mut self) -> Changes {
        if !self.fd.readable_hint() {
            return Changes::None;
        }
        let mut stale = Vec::new();
        let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
        let mut reader = inotify::Reader::new(self.fd.get_ref(), &mut buf);
        loop {
            match reader.next() {
                Ok(ev) if ev.events().contains(ReadFlags::QUEUE_OVERFLOW) => {
                    self.names.clear();
                    return Changes::All;
                }
                Ok(ev) => stale.extend(self.names.remove(&ev.wd()).unwrap_or_default()),
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    self.fd.clear_readable();
                    break;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    self.names.clear();
                    return Changes::All;
                }
            }
        }
        if stale.is_empty() { Changes::None } else { Changes::Names(stale) }
    }

    /// Watches the file `name` (open as `file`) and the folders on its way; true when all
    /// watches are set and the name still leads to `file` with stat `version`.
    pub(crate) fn watch(
        &mut self,
        root: &Root,
        name: &str,
        file: &std::fs::File,
        version: crate::cache::Version,
    ) -> bool {
        let own = format!("/proc/self/fd/{}", file.as_raw_fd());
        // No symlink on the way: the kernel's path of the open file is the root's + name.
        if std::fs::read_link(&own).ok().as_deref() != Some(root.path.join(name).as_path()) {
            return false;
        }
        let file_events = WatchFlags::MODIFY
            | WatchFlags::ATTRIB
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF;
        let Ok(wd) = inotify::add_watch(self.fd.get_ref(), own.as_str(), file_events) else { return false };
        self.guard(wd, name);
        let folder_events = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ATTRIB
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW;
        let mut folder = root.path.clone();
        let parents: Vec<&str> = name.split('/').collect();
        for step in std::iter::once("").chain(parents[..parents.len() - 1].iter().copied()) {
            if !step.is_empty() {
                folder.push(step);
            }
            let Ok(wd) = inotify::add_watch(self.fd.get_ref(), &folder, folder_events) else { return false };
            self.guard(wd, name);
        }
        rustix::fs::statat(&root.dir, name, rustix::fs::AtFlags::empty())
            .is_ok_and(|st| crate::cache::Version::of_stat(&st) == version)
    }

    fn guard(&mut self, wd: i32, name: &str) {
        let names = self.names.entry(wd).or_default();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
}
