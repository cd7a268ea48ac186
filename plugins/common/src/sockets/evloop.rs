//! The event loop every plugin runs on: one per thread — the plugin's calling thread, or each
//! `--threads` worker — that runs the thread's tasks *and* waits for its sockets and timers
//! itself, with one `epoll` of its own.
//!
//! Why not smol's `block_on` as before: async-io drives one `epoll` for the process from
//! whichever thread holds its lock, often its own "async-io" thread, so a ready socket woke
//! the executor through a futex and an eventfd; every wait re-armed its one-shot
//! registration (`epoll_ctl`); every timer re-programmed a timerfd. Measured under `wrk` on
//! `httpd` (issue 23): about 8.5 system calls per keep-alive request where nginx makes 3.
//! Here, per request: the read, the write, and a share of one `epoll_wait` per batch.
//!
//! - **Sources** ([`Async`]) are registered once, edge-triggered, for reading and writing;
//!   readiness is remembered per direction and cleared only by `EAGAIN` — or by a read or
//!   write that moved fewer bytes than asked (the socket was emptied or filled: the next
//!   edge will say when to try again, so the `EAGAIN` call is saved too, as nginx does).
//! - **Timers** ([`Timer`]) live in an ordered map; the nearest deadline is `epoll_wait`'s
//!   timeout. Arming or dropping one (hyper arms one per request) costs no system call.
//! - **Tasks** ([`Executor::spawn`], on `async-task`) wait in one queue. A wake-up from this
//!   thread only queues the task; one from another thread (a blocking-pool job, the Redis
//!   link, smol's own timers and pipes, which still work) also writes the loop's eventfd
//!   when — and only when — the loop is asleep in `epoll_wait`.
//!
//! A loop is entered with [`block_on`]; everything created inside it belongs to it and must
//! stay on its thread (sources and tasks are `!Send`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;
use rustix::event::epoll;
use slab::Slab;

pub use async_task::Task;

/// The token of the loop's own eventfd in its epoll set.
const WAKE_TOKEN: u64 = u64::MAX;

/// Tasks run between two looks at the sockets, so a busy queue cannot starve I/O.
const BATCH: usize = 128;

/// What other threads share with a loop: its run queue and how to wake it.
struct Shared {
    queue: Mutex<VecDeque<Runnable>>,
    /// Set while the loop is (about to be) blocked in `epoll_wait`.
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl Shared {
    fn push(&self, r: Runnable) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(r);
        self.notify();
    }

    fn pop(&self) -> Option<Runnable> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }

    fn is_idle(&self) -> bool {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Wakes the loop if it sleeps (only another thread can find it so).
    fn notify(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
        }
    }
}

/// Readiness and the waiting task of one direction of a source.
#[derive(Default)]
struct Direction {
    ready: bool,
    /// The peer closed its side, or the socket failed (RDHUP, HUP, ERR): that comes with
    /// no later edge, so a short read or write must not clear `ready` any more.
    ended: bool,
    waker: Option<Waker>,
}

impl Direction {
    fn set_ready(&mut self, ended: bool) -> Option<Waker> {
        self.ready = true;
        self.ended |= ended;
        self.waker.take()
    }
}

struct Source {
    token: u64,
    read: RefCell<Direction>,
    write: RefCell<Direction>,
}

/// A thread's loop: its epoll, sources, timers and queue.
struct Reactor {
    epoll: OwnedFd,
    shared: Arc<Shared>,
    sources: RefCell<Slab<Rc<Source>>>,
    /// Makes tokens of reused slab keys differ, so an event for a closed source is not
    /// taken for its successor's.
    generation: Cell<u32>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer: Cell<u64>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

fn current() -> Option<Rc<Reactor>> {
    CURRENT.with(|c| c.borrow().clone())
}

impl Reactor {
    fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let eventfd =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &eventfd,
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(Reactor {
            epoll,
            shared: Arc::new(Shared { queue: Mutex::new(VecDeque::new()), sleeping: AtomicBool::new(false), eventfd }),
            sources: RefCell::new(Slab::new()),
            generation: Cell::new(0),
            timers: RefCell::new(BTreeMap::new()),
            next_timer: Cell::new(1),
        })
    }

    fn register(&self, fd: impl AsFd) -> io::Result<Rc<Source>> {
        let mut sources = self.sources.borrow_mut();
        let entry = sources.vacant_entry();
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let token = (u64::from(generation) << 32) | entry.key() as u64;
        let source = Rc::new(Source {
            token,
            read: RefCell::new(Direction { ready: true, ended: false, waker: None }),
            write: RefCell::new(Direction { ready: true, ended: false, waker: None }),
        });
        use epoll::EventFlags as F;
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(token), F::IN | F::OUT | F::RDHUP | F::ET)?;
        entry.insert(source.clone());
        Ok(source)
    }

    fn deregister(&self, source: &Source, fd: impl AsFd) {
        let _ = epoll::delete(&self.epoll, fd);
        let key = (source.token & u64::from(u32::MAX)) as usize;
        let mut sources = self.sources.borrow_mut();
        if sources.get(key).is_some_and(|s| s.token == source.token) {
            sources.remove(key);
        }
    }

    /// Waits for events (not at all when `busy`, or once `main` is woken or a task queued),
    /// wakes their tasks and the due timers.
    fn poll(&self, busy: bool, main: &AtomicBool, events: &mut Vec<epoll::Event>) {
        let mut timeout = None;
        if busy {
            timeout = Some(Duration::ZERO);
        } else {
            if let Some(&(at, _)) = self.timers.borrow().keys().next() {
                timeout = Some(at.saturating_duration_since(Instant::now()));
            }
            // Announce the sleep, then look once more: a task queued (or the main future
            // woken) from another thread in between is either seen here or writes the eventfd.
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if !self.shared.is_idle() || main.load(Ordering::SeqCst) {
                timeout = Some(Duration::ZERO);
            }
        }
        let spec = timeout.map(|d| rustix::time::Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        events.clear();
        let r = epoll::wait(&self.epoll, rustix::buffer::spare_capacity(events), spec.as_ref());
        self.shared.sleeping.store(false, Ordering::SeqCst);
        if r.is_ok() {
            let mut woken = Vec::new();
            {
                let sources = self.sources.borrow();
                for ev in events.iter() {
                    let token = ev.data.u64();
                    if token == WAKE_TOKEN {
                        let mut buf = [0u8; 8];
                        let _ = rustix::io::read(&self.shared.eventfd, &mut buf);
                        continue;
                    }
                    let Some(source) = sources.get((token & u64::from(u32::MAX)) as usize) else { continue };
                    if source.token != token {
                        continue;
                    }
                    use epoll::EventFlags as F;
                    let flags = ev.flags;
                    let ended = flags.intersects(F::HUP | F::ERR | F::RDHUP);
                    if flags.intersects(F::IN | F::PRI) || ended {
                        woken.extend(source.read.borrow_mut().set_ready(ended));
                    }
                    if flags.intersects(F::OUT | F::HUP | F::ERR) {
                        woken.extend(source.write.borrow_mut().set_ready(flags.intersects(F::HUP | F::ERR)));
                    }
                }
            }
            woken.into_iter().for_each(Waker::wake);
        }
        self.fire_timers();
    }

    fn fire_timers(&self) {
        let now = Instant::now();
        let due = {
            let mut timers = self.timers.borrow_mut();
            if timers.keys().next().is_none_or(|&(at, _)| at > now) {
                return;
            }
            let later = timers.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *timers, later)
        };
        due.into_values().for_each(Waker::wake);
    }
}

/// Spawns tasks on the loop of the thread that made it.
pub struct Executor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executor")
    }
}

impl Executor {
    /// Starts `fut` as a task of this loop. Dropping the [`Task`] cancels it; `.detach()`
    /// lets it run to its end.
    pub fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> Task<T> {
        let shared = self.shared.clone();
        let (runnable, task) = async_task::spawn_local(fut, move |r| shared.push(r));
        runnable.schedule();
        task
    }
}

/// Starts `fut` as a task of the calling thread's loop (see [`Executor::spawn`]); for code
/// that runs on a loop without its [`Executor`] at hand. Panics outside a loop.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    let reactor = current().expect("spawn called outside an event loop");
    Executor { shared: reactor.shared.clone() }.spawn(fut)
}

/// The main future's waker: a flag, and the loop's eventfd if it sleeps.
struct MainWake {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.shared.notify();
    }
}

/// Runs `main` on a new loop on this thread, with an [`Executor`] for its tasks, until it
/// returns. Tasks still running then are dropped with the loop. Loops nest (an inner one
/// owns the thread until it returns).
pub fn block_on<T, Fut: Future<Output = T>>(main: impl FnOnce(Rc<Executor>) -> Fut) -> T {
    let reactor = Rc::new(Reactor::new().unwrap_or_else(|e| panic!("cannot create an event loop: {e}")));
    let outer = CURRENT.with(|c| c.replace(Some(reactor.clone())));
    let ex = Rc::new(Executor { shared: reactor.shared.clone() });
    let mut fut = pin!(main(ex));
    let wake = Arc::new(MainWake { woken: AtomicBool::new(true), shared: reactor.shared.clone() });
    let waker = Waker::from(wake.clone());
    let mut cx = Context::from_waker(&waker);
    let mut events = Vec::with_capacity(1024);
    let out = loop {
        if wake.woken.swap(false, Ordering::SeqCst)
            && let Poll::Ready(v) = fut.as_mut().poll(&mut cx)
        {
            break v;
        }
        for _ in 0..BATCH {
            match reactor.shared.pop() {
                Some(r) => {
                    r.run();
                }
                None => break,
            }
        }
        let busy = wake.woken.load(Ordering::SeqCst) || !reactor.shared.is_idle();
        reactor.poll(busy, &wake.woken, &mut events);
    };
    // Close: drop what waits on sources and timers, then whatever that queued.
    for s in reactor.sources.borrow_mut().drain() {
        drop(s.read.borrow_mut().waker.take());
        drop(s.write.borrow_mut().waker.take());
    }
    drop(std::mem::take(&mut *reactor.timers.borrow_mut()));
    while let Some(r) = reactor.shared.pop() {
        drop(r);
    }
    CURRENT.with(|c| c.replace(outer));
    out
}

/// An I/O object (a socket) registered with this thread's loop.
pub struct Async<T: AsFd> {
    io: Option<T>,
    source: Rc<Source>,
    reactor: Rc<Reactor>,
}

impl<T: AsFd> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Async({})", self.get_ref().as_fd().as_raw_fd())
    }
}

fn no_loop() -> io::Error {
    io::Error::other("no event loop on this thread (ws_common::runtime::block_on)")
}

impl<T: AsFd> Async<T> {
    /// Registers `io` (already non-blocking) with this thread's loop.
    pub fn new_nonblocking(io: T) -> io::Result<Async<T>> {
        let reactor = current().ok_or_else(no_loop)?;
        let source = reactor.register(&io)?;
        Ok(Async { io: Some(io), source, reactor })
    }

    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until into_inner")
    }

    /// Takes the object back out of the loop.
    pub fn into_inner(mut self) -> T {
        let io = self.io.take().expect("present until into_inner");
        self.reactor.deregister(&self.source, &io);
        io
    }

    /// Runs `op` once the direction is ready, until it does not say `EAGAIN`.
    fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let dir = if write { &self.source.write } else { &self.source.read };
        loop {
            {
                let mut d = dir.borrow_mut();
                if !d.ready {
                    if !d.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        d.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dir.borrow_mut().ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return Poll::Ready(r),
            }
        }
    }

    /// Marks a direction as not ready (the last call showed the socket empty or full),
    /// unless the peer's close or an error is pending there (no edge would announce it).
    fn drained(&self, write: bool) {
        let dir = if write { &self.source.write } else { &self.source.read };
        let mut d = dir.borrow_mut();
        d.ready = d.ended;
    }

    /// Whether the loop has seen the source readable since [`Async::clear_readable`] (or a
    /// read that found it empty): a look at a flag, no system call.
    pub fn readable_hint(&self) -> bool {
        self.source.read.borrow().ready
    }

    /// Makes the next read try the socket, edge or not (to look for a peer's last words
    /// after a write failed).
    pub fn assume_readable(&self) {
        self.source.read.borrow_mut().ready = true;
    }

    /// Notes that the source was read until empty (`EAGAIN`); the next edge sets it again.
    pub fn clear_readable(&self) {
        self.drained(false);
    }

    /// Waits until reading may not block.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, false, |_| Ok(()))
    }

    /// Waits until writing may not block.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, true, |_| Ok(()))
    }

    /// Runs `op` when readable, until it stops saying `EAGAIN`.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, false, &mut op)).await
    }

    /// Runs `op` when writable, until it stops saying `EAGAIN`.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, true, &mut op)).await
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if let Some(io) = &self.io {
            self.reactor.deregister(&self.source, io);
        }
    }
}

/// Reads and writes of a socket: straight system calls through rustix (std's go through
/// libc's wrappers, which switch thread cancellation on and off around each call: 2 % of a
/// small keep-alive request's time). Writes say `MSG_NOSIGNAL`, vectored ones too (std's
/// `writev` relies on SIGPIPE being ignored).
impl<T: AsFd> Async<T> {
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let r = self.poll_op(cx, false, |io| Ok(rustix::net::recv(io, &mut *buf, rustix::net::RecvFlags::empty())?.0));
        if let Poll::Ready(Ok(n)) = r
            && n > 0
            && n < buf.len()
        {
            self.drained(false);
        }
        r
    }

    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = self.poll_op(cx, true, |io| Ok(rustix::net::send(io, buf, rustix::net::SendFlags::NOSIGNAL)?));
        if let Poll::Ready(Ok(n)) = r
            && n < buf.len()
        {
            self.drained(true);
        }
        r
    }

    pub fn poll_write_vectored(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let r = self.poll_op(cx, true, |io| {
            let mut control = rustix::net::SendAncillaryBuffer::default();
            Ok(rustix::net::sendmsg(io, bufs, &mut control, rustix::net::SendFlags::NOSIGNAL)?)
        });
        if let Poll::Ready(Ok(n)) = r
            && n < bufs.iter().map(|b| b.len()).sum::<usize>()
        {
            self.drained(true);
        }
        r
    }
}

/// A future (and, with a period, a stream) that is ready at a deadline, on this thread's
/// loop; on a thread without one, on smol's timers.
#[derive(Debug)]
pub struct Timer {
    deadline: Option<Instant>,
    period: Option<Duration>,
    /// The id it is registered under in this thread's loop (0: not registered).
    id: u64,
    foreign: Option<smol::Timer>,
}

impl Timer {
    pub fn after(d: Duration) -> Timer {
        Timer::at(Instant::now() + d)
    }

    pub fn at(at: Instant) -> Timer {
        Timer { deadline: Some(at), period: None, id: 0, foreign: None }
    }

    /// A timer that never fires.
    pub fn never() -> Timer {
        Timer { deadline: None, period: None, id: 0, foreign: None }
    }

    /// Fires every `period`, first after one period (a [`futures_lite::Stream`]).
    pub fn interval(period: Duration) -> Timer {
        Timer { deadline: Some(Instant::now() + period), period: Some(period), id: 0, foreign: None }
    }

    /// Re-arms the timer for `at`.
    pub fn set_at(&mut self, at: Instant) {
        self.unregister();
        self.deadline = Some(at);
        self.foreign = None;
    }

    pub fn set_after(&mut self, d: Duration) {
        self.set_at(Instant::now() + d);
    }

    fn unregister(&mut self) {
        if self.id != 0
            && let Some(at) = self.deadline
        {
            let _ = CURRENT.try_with(|c| {
                if let Some(r) = c.borrow().as_ref() {
                    r.timers.borrow_mut().remove(&(at, self.id));
                }
            });
        }
        self.id = 0;
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let Some(at) = self.deadline else { return Poll::Pending };
        if let Some(f) = &mut self.foreign {
            return Pin::new(f).poll(cx);
        }
        if Instant::now() >= at {
            self.unregister();
            return Poll::Ready(at);
        }
        let Some(reactor) = current() else {
            let mut f = smol::Timer::at(at);
            let r = Pin::new(&mut f).poll(cx);
            self.foreign = Some(f);
            return r;
        };
        let mut timers = reactor.timers.borrow_mut();
        if self.id == 0 {
            self.id = reactor.next_timer.get();
            reactor.next_timer.set(self.id + 1);
        }
        match timers.get_mut(&(at, self.id)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                timers.insert((at, self.id), cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let this = self.get_mut();
        let r = this.poll_deadline(cx);
        if r.is_ready() {
            this.deadline = None;
        }
        r
    }
}

impl futures_lite::Stream for Timer {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        let this = self.get_mut();
        let at = std::task::ready!(this.poll_deadline(cx));
        this.foreign = None;
        this.deadline = this.period.map(|p| at + p);
        Poll::Ready(Some(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_and_dropped_ones_never() {
        let order = block_on(|ex| async move {
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (name, ms) in [("c", 30u64), ("a", 10), ("b", 20)] {
                let log = log.clone();
                tasks.push(ex.spawn(async move {
                    Timer::after(Duration::from_millis(ms)).await;
                    log.borrow_mut().push(name);
                }));
            }
            let log2 = log.clone();
            drop(ex.spawn(async move {
                Timer::after(Duration::from_millis(15)).await;
                log2.borrow_mut().push("dropped");
            }));
            for t in tasks {
                t.await;
            }
            log.borrow().clone()
        });
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_wake_from_another_thread_reaches_a_sleeping_loop() {
        let got = block_on(|_| async {
            let (tx, rx) = smol::channel::bounded(1);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let _ = tx.send_blocking(7);
            });
            rx.recv().await.ok()
        });
        assert_eq!(got, Some(7));
    }

    /// A wake of the main future from another thread that lands between the loop's last
    /// look and its sleep must still wake it (it was lost: a cross-worker room hung).
    #[test]
    fn wakes_of_the_main_future_from_another_thread_are_never_lost() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let n = block_on(|_| async move {
                let (to_main, from_thread) = smol::channel::bounded::<u32>(1);
                let (to_thread, from_main) = smol::channel::bounded::<u32>(1);
                std::thread::spawn(move || {
                    for i in 0..100_000 {
                        if to_main.send_blocking(i).is_err() || from_main.recv_blocking().is_err() {
                            return;
                        }
                    }
                });
                let mut n = 0;
                while let Ok(i) = from_thread.recv().await {
                    n += 1;
                    let _ = to_thread.send(i).await;
                }
                n
            });
            let _ = done_tx.send(n);
        });
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(30)), Ok(100_000));
    }

    /// Data and the peer's close in one edge: the short read that takes the data must not
    /// leave the close unread (no later edge announces it).
    #[test]
    fn a_close_that_came_with_the_last_data_is_still_read() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let got = block_on(|_| async move {
            let a = Async::new_nonblocking(a).unwrap();
            std::io::Write::write_all(&mut &b, b"last words").unwrap();
            drop(b);
            // The loop takes in the edge (data and close) before anyone reads.
            Timer::after(Duration::from_millis(10)).await;
            let mut buf = [0u8; 64];
            let n = std::future::poll_fn(|cx| a.poll_read(cx, &mut buf)).await.unwrap();
            let eof = futures_lite::future::or(
                async { Some(std::future::poll_fn(|cx| a.poll_read(cx, &mut [0u8; 64])).await.unwrap()) },
                async {
                    Timer::after(Duration::from_secs(2)).await;
                    None
                },
            )
            .await;
            (n, eof)
        });
        assert_eq!(got, (10, Some(0)), "the end of the stream was never read");
    }

    #[test]
    fn sockets_read_and_write_through_the_loop() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let echoed = block_on(|ex| async move {
            let a = Rc::new(Async::new_nonblocking(a).unwrap());
            let b = Async::new_nonblocking(b).unwrap();
            let writer = ex.spawn(async move {
                Timer::after(Duration::from_millis(20)).await;
                std::future::poll_fn(|cx| b.poll_write(cx, b"ping")).await.unwrap();
                b
            });
            let mut buf = [0u8; 16];
            let n = std::future::poll_fn(|cx| a.poll_read(cx, &mut buf)).await.unwrap();
            drop(writer.await);
            buf[..n].to_vec()
        });
        assert_eq!(echoed, b"ping");
    }
}
