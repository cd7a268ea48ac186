//! Servers on every core: `--threads N` runs N workers, each a thread with its own
//! single-threaded executor ([`crate::runtime::block_on`]) and its own listening socket, and
//! nothing shared on the hot path.
//!
//! How connections are spread: a TCP address is bound N times with `SO_REUSEPORT`, and the
//! kernel hashes each new connection to one of the N sockets — no thundering herd, no
//! hand-over between threads, and a worker that is busy does not slow the others' accepts.
//! A Unix socket has a single listening socket:
//! each worker accepts from its own duplicate of it, and whichever is free takes the next.
//!
//! What stays the server's, not the worker's: the connection limit and client ids
//! ([`Counters`], atomics), the ready line (printed once, when every socket is bound), and
//! the log, whose lines are whole (one queue for the process, see [`crate::log`]).
//!
//! Each worker's executor is its own event loop ([`crate::sockets::evloop`]): its sockets
//! are in its own `epoll`, and a ready socket wakes nothing on another thread.
//!
//! Work that belongs to one worker — `transfer`'s rooms, each served whole by the worker
//! [`owner`] names — reaches it through [`Inboxes`]: a connection is taken off the loop that
//! accepted it ([`crate::net::Stream::detach`]) and handed over.

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use ws_plugin_api::Error;

use crate::CommonError;
use crate::net::{ListenArgs, Listener, format_host_port};

/// The worker flag of the servers that have it.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Worker threads, each with its own event loop and listening socket (default: one per
    /// core; 1 runs everything on one thread)
    #[arg(long, value_name = "N", env = "WS_THREADS")]
    pub threads: Option<usize>,
}

impl WorkerArgs {
    /// How many workers to run.
    pub fn count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
            .max(1)
    }
}

/// What all workers of a server count together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections being served now, by every worker.
    pub active: AtomicUsize,
    /// The next client id (ids are unique across workers).
    pub next_id: AtomicU64,
}

/// A bound listening socket, not yet tied to a worker's executor.
#[derive(Debug)]
pub enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Bound {
    /// The listener on the calling worker's executor.
    pub fn into_listener(self) -> std::io::Result<Listener> {
        Ok(match self {
            Bound::Tcp(l) => Listener::Tcp(crate::net::TcpListener::from_std(l)?),
            Bound::Unix(l) => Listener::Unix(crate::net::UnixListener::from_std(l)?),
        })
    }
}

/// The sockets [`bind`] made, one per worker, each taken once by its worker.
#[derive(Debug)]
pub struct Sockets(Vec<std::sync::Mutex<Option<Bound>>>);

impl Sockets {
    /// Worker `i`'s listener, on the calling worker's executor.
    pub fn take(&self, i: usize) -> Result<Listener, Error> {
        let bound = self.0.get(i).and_then(|m| m.lock().ok()?.take());
        let bound = bound.ok_or_else(|| Error::failure(format!("no listening socket for worker {i}")))?;
        bound.into_listener().map_err(|e| Error::failure(format!("worker {i}: {e}")))
    }
}

/// Binds `n` listening sockets for `listen` (see the module docs), writes the pidfile and
/// prints the ready line once all are bound.
pub fn bind(listen: &ListenArgs, n: usize) -> Result<Sockets, CommonError> {
    let n = n.max(1);
    let (bound, shown) = match &listen.unix {
        Some(path) => {
            let addr = format!("unix:{}", path.display());
            let err = |source| CommonError::Listen { addr: addr.clone(), source };
            let first = crate::net::bind_unix_std(path).map_err(err)?;
            let mut all = Vec::with_capacity(n);
            for _ in 1..n {
                all.push(Bound::Unix(first.try_clone().map_err(err)?));
            }
            all.insert(0, Bound::Unix(first));
            (all, addr)
        }
        None => {
            let host = listen.bind_host();
            let addr = format_host_port(host, listen.port);
            let err = |source| CommonError::Listen { addr: addr.clone(), source };
            let mut at = (host, listen.port)
                .to_socket_addrs()
                .map_err(err)?
                .next()
                .ok_or_else(|| err(std::io::Error::other("no address for that host")))?;
            // SO_REUSEPORT would let this server join a port another one holds with it (a
            // second `ws echo_server` on the same port): a plain bind first says whether the
            // port is free, as without workers.
            if at.port() != 0 {
                drop(std::net::TcpListener::bind(at).map_err(err)?);
            }
            let mut all = Vec::with_capacity(n);
            for _ in 0..n {
                let l = if n == 1 { std::net::TcpListener::bind(at) } else { bind_reuseport(at) }.map_err(err)?;
                // Port 0: the others take the port the first one got.
                at = l.local_addr().map_err(err)?;
                all.push(Bound::Tcp(l));
            }
            (all, format_host_port(&at.ip().to_string(), at.port()))
        }
    };
    if let Some(p) = &listen.pidfile {
        crate::net::write_pidfile(p)?;
    }
    crate::net::ready_line(&shown);
    Ok(Sockets(bound.into_iter().map(|b| std::sync::Mutex::new(Some(b))).collect()))
}

/// A TCP listening socket with `SO_REUSEPORT` (and `SO_REUSEADDR`, as std sets it).
fn bind_reuseport(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Runs `work(i)` for i in 0..n, worker 0 on the calling thread and the others on threads of
/// their own; returns when all have returned, with the first error.
pub fn run<F>(n: usize, work: F) -> Result<(), Error>
where
    F: Fn(usize) -> Result<(), Error> + Sync,
{
    std::thread::scope(|s| {
        let others: Vec<_> = (1..n.max(1))
            .map(|i| {
                let work = &work;
                std::thread::Builder::new().name(format!("ws-worker-{i}")).spawn_scoped(s, move || work(i))
            })
            .collect();
        let mut result = work(0);
        for t in others {
            let r = match t {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err(Error::failure("a worker thread panicked"))),
                Err(e) => Err(Error::failure(format!("cannot start a worker thread: {e}"))),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// The worker, of `workers`, that owns `key` (a room): the same for every worker and every
/// connection of a run, spread evenly over the workers.
pub fn owner(key: &str, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new()` has fixed keys: the same answer on every thread of the process.
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}

/// One inbox per worker for what other workers hand it (unbounded: what goes in is bounded
/// by the connections the server admits).
#[derive(Debug)]
pub struct Inboxes<T> {
    boxes: Vec<(smol::channel::Sender<T>, smol::channel::Receiver<T>)>,
}

impl<T> Inboxes<T> {
    pub fn new(workers: usize) -> std::sync::Arc<Inboxes<T>> {
        std::sync::Arc::new(Inboxes { boxes: (0..workers.max(1)).map(|_| smol::channel::unbounded()).collect() })
    }

    /// Hands `item` to worker `to`; given back if there is no such worker.
    pub fn send(&self, to: usize, item: T) -> Result<(), T> {
        match self.boxes.get(to) {
            Some((tx, _)) => tx.try_send(item).map_err(smol::channel::TrySendError::into_inner),
            None => Err(item),
        }
    }

    /// The next item for worker `me` (waits forever if there is no such worker).
    pub async fn recv(&self, me: usize) -> T {
        match self.boxes.get(me) {
            Some((_, rx)) => match rx.recv().await {
                Ok(item) => item,
                // Never: the senders live as long as the inboxes.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_every_worker_and_stay_put() {
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let key = format!("ws:room:{i}");
            let w = owner(&key, 4);
            assert_eq!(w, owner(&key, 4), "same key, same worker");
            seen[w] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven: {seen:?}");
        assert_eq!(owner("anything", 1), 0);
        assert_eq!(owner("anything", 0), 0);
    }

    #[test]
    fn an_inbox_delivers_to_its_worker_only() {
        let inboxes = Inboxes::new(2);
        inboxes.send(1, "for one").unwrap();
        assert_eq!(inboxes.send(2, "nobody"), Err("nobody"));
        let got = crate::runtime::block_on(|_| async { inboxes.recv(1).await });
        assert_eq!(got, "for one");
        assert!(inboxes.boxes[0].1.is_empty());
    }
}
