//! Waiting on a condition with a deadline, never for a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait between two checks of a condition.
const POLL: Duration = Duration::from_millis(10);

/// Checks `condition` until it holds, panicking with `what` once `timeout` has passed.
///
/// Use it for state outside the test's control (a process that comes up, a file that
/// appears); a wait for an event the test can observe directly (a stream item) wants that
/// event instead.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// The async twin of [`wait_until`]: awaits `condition()` until it yields `true`.
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
