//! The async runtime a plugin runs in: one event loop ([`crate::sockets::evloop`]) on the
//! plugin's calling thread, or on each worker's. Measured here, one thread echoed as fast
//! as two (the load client shares the two cores), and a thread-local executor lets tasks
//! share state through `Rc`/`RefCell` without locks. The loop is built inside the plugin's
//! `run` and dropped before it returns.
//!
//! [`Isolated`] keeps a future from being polled for other tasks' wake-ups: a relay that
//! polls two directions in one task (`proxy_server`) would otherwise try a read (EAGAIN)
//! on one side per batch of the other.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

pub use crate::sockets::evloop::{Async, Executor, Task, Timer, spawn};

/// A handle to spawn tasks on the plugin's (or worker's) loop.
pub type Spawner = Rc<Executor>;

/// Runs `main` to completion on a fresh event loop on this thread.
pub fn block_on<F, Fut>(main: F) -> Fut::Output
where
    F: FnOnce(Spawner) -> Fut,
    Fut: Future,
{
    let out = crate::sockets::evloop::block_on(main);
    crate::log::flush();
    out
}

/// hyper's timer on the loop's [`Timer`]s (arming one costs no system call).
#[derive(Clone, Debug, Default)]
pub struct LoopTimer;

struct Sleep(Timer);

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for Sleep {}

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, d: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(Timer::after(d)))
    }
    fn sleep_until(&self, at: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(Timer::at(at)))
    }
}

/// A future polled only after its own waker fired (or on the first poll), however often the
/// future containing it is polled.
pub struct Isolated<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
}

struct Signal {
    woken: AtomicBool,
    parent: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let parent = self.parent.lock().map(|p| p.clone()).unwrap_or(None);
        if let Some(w) = parent {
            w.wake();
        }
    }
}

impl<F: Future> Isolated<F> {
    pub fn new(inner: F) -> Self {
        Isolated {
            inner: Box::pin(inner),
            signal: Arc::new(Signal { woken: AtomicBool::new(true), parent: Mutex::new(None) }),
        }
    }
}

impl<F> std::fmt::Debug for Isolated<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Isolated")
    }
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Ok(mut parent) = self.signal.parent.lock()
            && !parent.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            *parent = Some(cx.waker().clone());
        }
        if !self.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.signal.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// hyper's executor for the tasks of an HTTP/2 connection, on the plugin's executor (they
/// need not be `Send`).
#[derive(Clone)]
pub struct LocalExec(pub Spawner);

impl std::fmt::Debug for LocalExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalExec")
    }
}

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut).detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_future_is_polled_only_when_woken() {
        use std::cell::Cell;
        let polls = Rc::new(Cell::new(0u32));
        let p = polls.clone();
        block_on(|ex| async move {
            // Busy tasks wake the executor thousands of times while the main future waits
            // on a timer: it must be polled about twice (start, timer), not per wake-up.
            for _ in 0..4 {
                ex.spawn(async {
                    for _ in 0..2000 {
                        smol::future::yield_now().await;
                    }
                })
                .detach();
            }
            let mut timer = Timer::after(std::time::Duration::from_millis(50));
            std::future::poll_fn(|cx| {
                p.set(p.get() + 1);
                Pin::new(&mut timer).poll(cx).map(|_| ())
            })
            .await;
        });
        assert!(polls.get() <= 3, "polled {} times without being woken", polls.get());
    }
}
