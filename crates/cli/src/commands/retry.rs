//! Which errors are worth another try (a transient one anywhere in the chain), and polls
//! of what has no watch (EC2) until a condition holds.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// Whether an error is worth retrying (somewhere in its chain).
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<baton_kube::KubeError>()
            .is_some_and(|k| k.is_transient())
            || c.downcast_ref::<baton_aws::Error>()
                .is_some_and(|a| a.is_transient())
    })
}

/// The polled condition does not hold yet: worth another look.
#[derive(Debug)]
struct NotYet;

impl std::fmt::Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not yet")
    }
}

impl std::error::Error for NotYet {}

/// Calls `look` until it returns `Some`, pausing `first`, then twice as long each time
/// up to `most`, for `total` in all: `None` when the time ran out. An error from `look`
/// ends the poll at once.
pub async fn poll_until<T, F, Fut>(
    mut look: F,
    first: Duration,
    most: Duration,
    total: Duration,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let pauses = ExponentialBuilder::default()
        .with_min_delay(first)
        .with_factor(2.0)
        .with_max_delay(most)
        .without_max_times()
        .with_total_delay(Some(total));
    let once = || {
        let seen = look();
        async move { seen.await?.ok_or_else(|| anyhow::Error::new(NotYet)) }
    };
    match once.retry(pauses).when(|e| e.is::<NotYet>()).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is::<NotYet>() => Ok(None),
        Err(e) => Err(e),
    }
}
