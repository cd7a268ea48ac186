//! The async runtime a plugin runs in: one smol `LocalExecutor` on the plugin's calling
//! thread. Measured here, one thread echoed as fast as two (the load client shares the two
//! cores), and a local executor lets tasks share state through `Rc`/`RefCell` without locks.
//! The executor is built inside the plugin's `run` and dropped before it returns.
//!
//! The plugin's main future (a server's accept loop) is [`Isolated`]: `block_on` re-polls
//! its future whenever *any* task wakes, and an accept loop polled that way tries `accept4`
//! (EAGAIN) once per wake-up — measured as one wasted syscall per relayed batch in
//! `proxy_server`. Isolated, it is polled only when its own waker fires.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

pub use smol::LocalExecutor;

/// A handle to spawn tasks on the plugin's executor.
pub type Spawner = Rc<LocalExecutor<'static>>;

/// Runs `main` to completion on a fresh single-threaded executor.
pub fn block_on<F, Fut>(main: F) -> Fut::Output
where
    F: FnOnce(Spawner) -> Fut,
    Fut: Future,
{
    let ex: Spawner = Rc::new(LocalExecutor::new());
    let fut = main(ex.clone());
    let out = smol::block_on(ex.run(Isolated::new(fut)));
    crate::log::flush();
    out
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
            let mut timer = smol::Timer::after(std::time::Duration::from_millis(50));
            std::future::poll_fn(|cx| {
                p.set(p.get() + 1);
                Pin::new(&mut timer).poll(cx).map(|_| ())
            })
            .await;
        });
        assert!(polls.get() <= 3, "polled {} times without being woken", polls.get());
    }
}
