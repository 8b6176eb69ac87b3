//! Work that runs after the answer has left, on a thread of its own.
//!
//! Some work must not happen on the request path because its cost would tell a visitor something:
//! finishing a registration costs more for a new address than for a taken one. Spawning it on the
//! request's own worker is not enough: the worker's runtime may poll the new task before it has
//! flushed the answer, and the task's CPU then delays the very answer it was meant to stay out
//! of. So deferred work runs on one dedicated thread with its own single-threaded runtime, fed
//! through a bounded queue. A full queue is refused whatever the work is, so the refusal (503)
//! does not depend on it either.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The queue was full or its thread has stopped.
#[derive(Debug, thiserror::Error)]
#[error("deferred work queue is full")]
pub struct QueueFull;

/// The handle to the deferred-work thread. Dropping it lets the queued and running tasks finish,
/// then the thread ends.
pub struct Deferred {
    queue: Option<mpsc::Sender<Task>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Deferred {
    /// Starts the thread; at most `capacity` tasks wait at once.
    pub fn start(capacity: usize) -> std::io::Result<Self> {
        let (queue, mut tasks) = mpsc::channel::<Task>(capacity.max(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("phaze-deferred".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut running = tokio::task::JoinSet::new();
                    while let Some(task) = tasks.recv().await {
                        running.spawn(task);
                        // Reap finished tasks as we go, so the set stays small.
                        while running.try_join_next().is_some() {}
                    }
                    while running.join_next().await.is_some() {}
                });
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `task` to run after the current request has answered.
    pub fn run(&self, task: impl Future<Output = ()> + Send + 'static) -> Result<(), QueueFull> {
        let queue = self.queue.as_ref().ok_or(QueueFull)?;
        queue.try_send(Box::pin(task)).map_err(|_| QueueFull)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        // Closing the queue ends the thread once the tasks it holds are done.
        self.queue.take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // A task may hold the last reference to what owns this handle, so the drop can happen
        // on the deferred thread itself: it must not wait for itself.
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn tasks_run_on_their_own_thread_and_finish_before_drop_returns() {
        let deferred = Deferred::start(16).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let caller = std::thread::current().id();
        for _ in 0..10 {
            let done = done.clone();
            deferred
                .run(async move {
                    assert_ne!(std::thread::current().id(), caller);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        drop(deferred);
        assert_eq!(done.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn a_full_queue_refuses_instead_of_blocking() {
        let deferred = Deferred::start(1).unwrap();
        let (started, is_started) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        // The first task holds the thread (it blocks it on purpose), so nothing is dequeued.
        deferred
            .run(async move {
                let _ = started.send(());
                let _ = released.recv();
            })
            .unwrap();
        is_started.recv().unwrap();
        let refused = (0..10).filter(|_| deferred.run(async {}).is_err()).count();
        assert_eq!(
            refused, 9,
            "the queue holds one, the rest are refused at once"
        );
        release.send(()).unwrap();
    }
}
