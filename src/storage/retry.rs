//! Retrying storage operations that failed for a reason that may pass: exponential backoff
//! with jitter, bounded by attempts and time, or (for objects that must land, such as the
//! segments and playlists of a live stream) until the caller cancels.
//!
//! The schedule is pure ([`RetryPolicy::next_delay`]); [`retry`] is the thin async loop
//! around it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::error::StoreError;
use crate::backoff::Backoff;

/// When to stop retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryLimit {
    /// Stop after `max_attempts` attempts (the first one included), or when `max_elapsed`
    /// has passed since the first attempt started, whichever comes first.
    Bounded { max_attempts: u32, max_elapsed: Duration },
    /// Retry until the cancellation signal given to [`retry`] fires.
    UntilCancelled,
}

/// How to retry: after jittered delays of a [`Backoff`], up to a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub limit: RetryLimit,
}

impl RetryPolicy {
    /// A bounded policy for operations whose caller can handle the failure: backoff from
    /// 100 ms up to 5 s.
    pub fn bounded(max_attempts: u32, max_elapsed: Duration) -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            limit: RetryLimit::Bounded { max_attempts, max_elapsed },
        }
    }

    /// A policy for objects that must eventually land: backoff from 200 ms up to 5 s, so
    /// that after an outage the stream resumes within seconds.
    pub fn until_cancelled() -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            limit: RetryLimit::UntilCancelled,
        }
    }

    /// The same policy with other backoff bounds.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(initial, max);
        self
    }

    /// Whether to retry after `attempts` failed attempts, `elapsed` after the first one
    /// started, and how long to wait first. A bounded policy never waits past
    /// `max_elapsed`: the last delay is shortened to end at it.
    pub fn next_delay(&self, attempts: u32, elapsed: Duration, unit: f64) -> Option<Duration> {
        let delay = self.backoff.jittered(attempts, unit);
        match self.limit {
            RetryLimit::UntilCancelled => Some(delay),
            RetryLimit::Bounded { max_attempts, max_elapsed } => {
                if attempts >= max_attempts || elapsed >= max_elapsed {
                    None
                } else {
                    Some(delay.min(max_elapsed - elapsed))
                }
            }
        }
    }
}

/// Why a retried operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The operation failed in a way that retrying cannot fix.
    #[error("{source}")]
    Permanent { attempts: u32, source: StoreError },
    /// The policy's limit was reached.
    #[error("gave up after {attempts} attempts: {source}")]
    Exhausted { attempts: u32, source: StoreError },
    /// The cancellation signal fired first.
    #[error("cancelled after {attempts} attempts")]
    Cancelled { attempts: u32, last: Option<StoreError> },
}

impl RetryError {
    /// The last error the operation returned, if it ran at all.
    pub fn last_error(&self) -> Option<&StoreError> {
        match self {
            Self::Permanent { source, .. } | Self::Exhausted { source, .. } => Some(source),
            Self::Cancelled { last, .. } => last.as_ref(),
        }
    }
}

/// Runs `operation` until it succeeds, fails permanently, the policy gives up, or
/// `cancelled` resolves (which also abandons an attempt in flight). `what` names the
/// operation in logs (a key, never a credential). For a bounded policy without
/// cancellation, pass `std::future::pending()`.
pub async fn retry<T, Op, Fut>(
    policy: &RetryPolicy,
    what: &str,
    cancelled: impl Future<Output = ()>,
    mut operation: Op,
) -> Result<T, RetryError>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut cancelled = std::pin::pin!(cancelled);
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut last = None;
    loop {
        let outcome = tokio::select! {
            biased;
            () = cancelled.as_mut() => return Err(RetryError::Cancelled { attempts, last }),
            outcome = operation() => outcome,
        };
        attempts = attempts.saturating_add(1);
        let error = match outcome {
            Ok(value) => {
                if attempts > 1 {
                    tracing::info!(operation = what, attempts, "storage operation succeeded after retrying");
                }
                return Ok(value);
            }
            Err(error) if !error.is_retryable() => return Err(RetryError::Permanent { attempts, source: error }),
            Err(error) => error,
        };
        let Some(delay) = policy.next_delay(attempts, started.elapsed(), rand::random::<f64>()) else {
            return Err(RetryError::Exhausted { attempts, source: error });
        };
        tracing::warn!(
            operation = what,
            attempts,
            retry_in_ms = delay.as_millis() as u64,
            error = %error,
            "storage operation failed; retrying"
        );
        last = Some(error);
        tokio::select! {
            biased;
            () = cancelled.as_mut() => return Err(RetryError::Cancelled { attempts, last }),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy::bounded(5, Duration::from_secs(10)).with_backoff(100 * MS, 1000 * MS)
    }

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let ceilings: Vec<_> = (1..=5).map(|n| policy().next_delay(n, Duration::ZERO, 1.0)).collect();
        let expected = [Some(100 * MS), Some(200 * MS), Some(400 * MS), Some(800 * MS), None];
        assert_eq!(ceilings, expected, "the fifth failed attempt is the last");
        let long = policy().with_backoff(100 * MS, 1000 * MS);
        let long = RetryPolicy { limit: RetryLimit::UntilCancelled, ..long };
        assert_eq!(long.next_delay(9, Duration::ZERO, 1.0), Some(1000 * MS), "capped");
        assert_eq!(policy().next_delay(3, Duration::ZERO, 0.0), Some(200 * MS), "half the ceiling at the least");
    }

    #[test]
    fn bounded_policies_stop_at_attempts_or_time() {
        let p = policy();
        assert_eq!(p.next_delay(1, Duration::ZERO, 1.0), Some(100 * MS));
        assert_eq!(p.next_delay(4, Duration::ZERO, 1.0), Some(800 * MS));
        assert_eq!(p.next_delay(5, Duration::ZERO, 1.0), None);
        assert_eq!(p.next_delay(2, Duration::from_secs(10), 1.0), None);
        assert_eq!(p.next_delay(4, Duration::from_millis(9_700), 1.0), Some(300 * MS));
    }

    #[test]
    fn unbounded_policies_keep_going_at_the_cap() {
        let p = RetryPolicy::until_cancelled().with_backoff(100 * MS, 1000 * MS);
        assert_eq!(p.next_delay(1_000_000, Duration::from_secs(86_400), 1.0), Some(1000 * MS));
    }

    fn unreachable() -> StoreError {
        StoreError::Unreachable { detail: "connection refused".into() }
    }

    /// Backoff short enough that the loop tests take milliseconds of real time.
    fn quick(limit: RetryLimit) -> RetryPolicy {
        RetryPolicy { backoff: Backoff::new(MS, 2 * MS), limit }
    }

    fn quick_bounded() -> RetryPolicy {
        quick(RetryLimit::Bounded { max_attempts: 5, max_elapsed: Duration::from_secs(10) })
    }

    #[tokio::test]
    async fn retries_transient_failures_until_success() {
        let calls = AtomicU32::new(0);
        let result = retry(&quick_bounded(), "put k", std::future::pending(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(unreachable()) } else { Ok(7) }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&quick_bounded(), "put k", std::future::pending(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::AccessDenied { detail: "InvalidAccessKeyId".into() })
        })
        .await;
        assert!(matches!(result, Err(RetryError::Permanent { attempts: 1, .. })), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bounded_retries_give_up_with_the_last_error() {
        let result: Result<(), _> =
            retry(&quick_bounded(), "put k", std::future::pending(), || async { Err(unreachable()) }).await;
        match result {
            Err(RetryError::Exhausted { attempts: 5, source }) => assert!(source.is_retryable()),
            other => panic!("expected exhaustion after 5 attempts, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn cancellation_stops_an_endless_retry() {
        let cancel = tokio::sync::Notify::new();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&quick(RetryLimit::UntilCancelled), "put k", cancel.notified(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) + 1 == 20 {
                cancel.notify_one();
            }
            Err(unreachable())
        })
        .await;
        match result {
            Err(RetryError::Cancelled { attempts: 20, last: Some(last) }) => assert!(last.is_retryable()),
            other => panic!("expected cancellation after 20 attempts, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 20);
    }
}
