//! Cleanups that outlive a cancelled operation.
//!
//! The operations of this crate and of the backends built on it are
//! cancel-safe: dropping their future stops them. What can be cleaned up
//! synchronously (temporary folders, partial files) is removed by `Drop`
//! guards at once. What needs async work — giving a store lease back,
//! dropping a temporary database, waiting for a blocking worker to remove its
//! staging folder — cannot be awaited in `Drop`: the guard hands it to
//! [`defer`], which spawns it on the current Tokio runtime and remembers it.
//!
//! A program that keeps running needs to do nothing: deferred cleanups run by
//! themselves. A program about to exit after cancelling an operation (on
//! SIGINT, say) awaits [`finish`] first, with a time bound, so that the
//! runtime is not shut down under them:
//!
//! ```
//! # async fn work() {}
//! # async fn example() {
//! use std::time::Duration;
//! tokio::select! {
//!     () = work() => {}
//!     () = tokio::time::sleep(Duration::from_millis(1)) => {
//!         // `work()` was dropped here; its guards deferred what they could not do.
//!         let left = backup_core::cleanup::finish(Duration::from_secs(30)).await;
//!         assert!(left.is_empty(), "not cleaned up: {left:?}");
//!     }
//! }
//! # }
//! ```

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

/// Deferred cleanups not yet awaited by [`finish`]: what each one does, and its task.
static PENDING: Mutex<Vec<(String, JoinHandle<()>)>> = Mutex::new(Vec::new());

/// Runs `cleanup` (described by `what`, for the log) on the current Tokio
/// runtime, and keeps it for [`finish`]. Meant for `Drop` implementations.
/// Outside a runtime the cleanup cannot run: that is logged.
pub fn defer<F>(what: impl Into<String>, cleanup: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let what = what.into();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%what, "no async runtime left to clean up on");
        return;
    };
    let task = runtime.spawn(cleanup);
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    // Finished ones are forgotten, so that a long-running program does not
    // accumulate handles.
    pending.retain(|(_, task)| !task.is_finished());
    pending.push((what, task));
}

/// Awaits every deferred cleanup, at most `limit` in all. Returns what did
/// not finish in time (empty when everything was cleaned up).
pub async fn finish(limit: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut left = Vec::new();
    loop {
        // Cleanups may defer further cleanups: take until none is left.
        let batch = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return left;
        }
        for (what, mut task) in batch {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(%what, "cleanup did not finish in time");
                left.push(what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn deferred_cleanups_are_awaited_and_late_ones_named() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        defer("quick", async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        defer("slow", tokio::time::sleep(Duration::from_secs(60)));
        let left = finish(Duration::from_millis(300)).await;
        assert!(done.load(Ordering::SeqCst));
        // Other tests of this process may defer too: look only at these two.
        assert!(
            left.contains(&"slow".to_owned()) && !left.contains(&"quick".to_owned()),
            "{left:?}"
        );
        assert!(finish(Duration::from_millis(10)).await.is_empty(), "awaited once");
    }
}
