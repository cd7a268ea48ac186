//! The async runtime a plugin runs in: one smol `LocalExecutor` on the plugin's calling
//! thread. Measured here, one thread echoed as fast as two (the load client shares the two
//! cores), and a local executor lets tasks share state through `Rc`/`RefCell` without locks.
//! The executor is built inside the plugin's `run` and dropped before it returns.

use std::future::Future;
use std::rc::Rc;

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
    smol::block_on(ex.run(fut))
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
