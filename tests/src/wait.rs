//! Polling a condition until it holds, with a deadline.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep};

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `probe` until it returns `Ok(Some(value))`, or fails after `timeout` naming `what` and the
/// last probe's error. Errors count as "not yet" (a server that is still starting).
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            match last {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the synchronous condition `cond` is true.
pub async fn until_true(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<()> {
    until(what, timeout, || {
        let done = cond();
        async move { Ok(done.then_some(())) }
    })
    .await
}
