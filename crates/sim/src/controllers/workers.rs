//! Work a controller hands out of its pass, as a real controller's workqueue workers do:
//! one task per key (a pod, a volume) at a time, a bounded number at once, so a slow call
//! for one object (moto answering an AttachVolume, a pod's fingerprint write) does not
//! hold up the next pass or any other object's work.
//!
//! A pass skips a key whose task is still queued or running, and marks it: as client-go's
//! workqueue re-queues an item added while it is processed, a marked task's end wakes
//! its controller for a pass now over that key ([`super::Scope::again`]), so the change
//! the skipping pass saw is looked at again. A task
//! may also ask for its key to be looked at again at an instant (a modelled delay, as a
//! workqueue's `AddAfter`): then a pass over that key runs, not a full one, so a
//! thousand volumes' timers cost a thousand small passes, not a thousand scans of the
//! estate. What a task writes wakes the controller through the change stream, as any
//! write does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// What a controller's loop wakes on besides changes: its workers' requests.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// Keys a pass is wanted for now.
    again: Mutex<Vec<String>>,
}

impl Wake {
    /// Asks for a pass now over `key`.
    pub(crate) fn request_again(&self, key: String) {
        self.again
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
        self.notify.notify_one();
    }

    /// Asks for a pass over `key` at `at`.
    pub(crate) fn request_again_at(self: &Arc<Self>, key: String, at: Instant) {
        let wake = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            wake.request_again(key);
        });
    }

    /// Waits for a request.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The keys a pass was asked for now (and clears them).
    pub(crate) fn take_again(&self) -> Vec<String> {
        std::mem::take(&mut *self.again.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One controller's workers.
#[derive(Debug)]
pub(crate) struct Workers {
    /// Keys with a task queued or running → whether a pass wanted them meanwhile.
    in_flight: Arc<Mutex<HashMap<String, bool>>>,
    permits: Arc<Semaphore>,
}

impl Workers {
    /// Workers running at most `limit` tasks at once (more wait for a permit).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            in_flight: Arc::default(),
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// Whether `key` has a task queued or running.
    pub(crate) fn busy(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// Runs `work` for `key` unless a task for it is queued or running (then marks that
    /// one, so that its end asks for a pass now over `key`). When it ends, `wake` is
    /// asked for a pass over `key` at the instant it returns, if any.
    pub(crate) fn spawn<F>(&self, key: String, wake: &Arc<Wake>, work: F)
    where
        F: Future<Output = Option<Instant>> + Send + 'static,
    {
        {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = in_flight.get_mut(&key) {
                *again = true;
                return;
            }
            in_flight.insert(key.clone(), false);
        }
        let (in_flight, permits, wake) =
            (self.in_flight.clone(), self.permits.clone(), wake.clone());
        tokio::spawn(async move {
            let at = match permits.acquire_owned().await {
                Ok(_permit) => work.await,
                Err(_) => None, // closed: cannot happen, the semaphore is never closed
            };
            let again = in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key)
                .unwrap_or(false);
            if again {
                wake.request_again(key);
            } else if let Some(at) = at {
                wake.request_again_at(key, at);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_task_per_key_and_a_pass_that_wanted_it_meanwhile_gets_another() {
        let workers = Workers::new(2);
        let wake = Arc::new(Wake::default());
        let gate = Arc::new(Notify::new());
        let g = gate.clone();
        workers.spawn("pod-a".into(), &wake, async move {
            g.notified().await;
            None
        });
        assert!(workers.busy("pod-a"));
        // A second spawn for the same key while the first runs is dropped, and marks it.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        workers.spawn("pod-a".into(), &wake, async move {
            r.store(true, std::sync::atomic::Ordering::SeqCst);
            None
        });
        gate.notify_one();
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("the marked task's end wakes its controller");
        assert_eq!(
            wake.take_again(),
            ["pod-a"],
            "a pass now, to look at pod-a again"
        );
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!workers.busy("pod-a"));

        // Unmarked, a task that asks for nothing wakes nothing; one that asks for an
        // instant asks for a pass over its key then, not now.
        workers.spawn("pod-b".into(), &wake, async { None });
        let later = Instant::now() + Duration::from_millis(300);
        workers.spawn("pod-c".into(), &wake, async move { Some(later) });
        while workers.busy("pod-b") || workers.busy("pod-c") {
            tokio::task::yield_now().await;
        }
        assert!(wake.take_again().is_empty(), "nothing asks for a pass now");
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .unwrap();
        assert!(Instant::now() >= later, "not before the instant");
        assert_eq!(wake.take_again(), ["pod-c"]);
    }
}
