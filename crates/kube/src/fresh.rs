//! One fresh LIST shared by every reader that asked before it was sent.
//!
//! A decision that must not trust the watch cache (a deletion, a stop) reads the world
//! afresh; for a cluster-wide kind such as VolumeAttachments that is a LIST of every
//! object, and 250 apps deciding at once made 250 such LISTs, each held in memory at the
//! same time (most of baton's peak RSS on a 1,000-volume estate). [`Shared`] sends one
//! LIST at a time and hands its result to every reader whose request arrived **before**
//! that LIST was sent: such a reader sees the world as fresh as its own LIST would have
//! shown it (the LIST started after everything the reader did before asking), so the
//! guarantee of a fresh read is kept. A reader that arrives while a LIST is in flight
//! waits for the next one, which it may share with others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The last LIST and the ticket count when it was sent.
struct Last<T> {
    /// Every ticket ≤ this was drawn before the LIST was sent.
    covers: u64,
    items: Arc<Vec<T>>,
}

/// A shared fresh LIST of one kind (see the module's documentation).
pub(crate) struct Shared<T> {
    /// Tickets drawn by readers, in arrival order.
    tickets: AtomicU64,
    /// Held while a LIST is in flight: one at a time.
    sending: tokio::sync::Mutex<()>,
    last: Mutex<Option<Last<T>>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            tickets: AtomicU64::new(0),
            sending: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        }
    }
}

impl<T> Shared<T> {
    /// The result of a LIST sent after this call began: a shared one when there is one,
    /// else `list()`'s, which is then shared with the readers that arrived before it was
    /// sent. An error is this reader's alone (the next reader sends its own LIST).
    pub(crate) async fn get<E, F, Fut>(&self, list: F) -> Result<Arc<Vec<T>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, E>>,
    {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let _sending = self.sending.lock().await;
        if let Some(items) = self.covering(ticket) {
            return Ok(items);
        }
        // Every ticket drawn so far, this one included, was drawn before this LIST.
        let covers = self.tickets.load(Ordering::SeqCst);
        let items = Arc::new(list().await?);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Last {
            covers,
            items: items.clone(),
        });
        Ok(items)
    }

    fn covering(&self, ticket: u64) -> Option<Arc<Vec<T>>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|l| l.covers >= ticket)
            .map(|l| l.items.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn readers_that_arrive_together_share_one_list_and_a_later_one_gets_its_own() {
        let shared = Arc::new(Shared::<u32>::default());
        let lists = Arc::new(AtomicUsize::new(0));
        let list = |lists: Arc<AtomicUsize>| async move {
            let n = lists.fetch_add(1, Ordering::SeqCst) as u32 + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(vec![n])
        };
        // The first reader sends list 1; the 20 arriving while it is in flight must not
        // take it (it was sent before they asked), and share list 2.
        let first = {
            let (s, l) = (shared.clone(), lists.clone());
            tokio::spawn(async move { s.get(|| list(l)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let (s, l) = (shared.clone(), lists.clone());
                tokio::spawn(async move { s.get(|| list(l)).await })
            })
            .collect();
        assert_eq!(*first.await.unwrap().unwrap(), vec![1]);
        for w in waiting {
            assert_eq!(*w.await.unwrap().unwrap(), vec![2]);
        }
        assert_eq!(lists.load(Ordering::SeqCst), 2);
        // Afterwards a reader never gets an old list.
        assert_eq!(*shared.get(|| list(lists.clone())).await.unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn a_failed_list_is_the_failing_readers_own() {
        let shared = Shared::<u32>::default();
        assert_eq!(
            shared.get(|| async { Err::<Vec<u32>, _>("down") }).await,
            Err("down")
        );
        assert_eq!(
            *shared.get(|| async { Ok::<_, ()>(vec![7]) }).await.unwrap(),
            vec![7]
        );
    }
}
