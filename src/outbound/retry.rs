//! Retries of one outbound call under one deadline.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use http::HeaderMap;
use tokio::time::Instant;

/// The longest wait a `Retry-After` is read as: a server asking for more (or for forever)
/// is asking for at least this, which no caller here waits for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How a client retries: how often, how long it waits between attempts, and the longest
/// server-requested wait it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Names the client in the log line of a retry.
    pub name: &'static str,
    /// Attempts after the first.
    pub retries: u32,
    /// The first wait without a `Retry-After`; it doubles per retry, up to `max_wait`, and
    /// each wait gets up to as much again of random jitter so that replicas do not retry in
    /// step.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// A `Retry-After` longer than this ends the call at once rather than waiting.
    pub longest_retry_after: Duration,
}

/// One failed attempt and whether another may follow.
#[derive(Debug)]
pub struct Failure<E> {
    pub error: E,
    retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    No,
    /// After the policy's backoff, or after what the server asked for.
    Yes(Option<Duration>),
}

impl<E> Failure<E> {
    /// A failure another attempt would not change.
    pub fn fatal(error: E) -> Self {
        Failure {
            error,
            retry: Retry::No,
        }
    }

    /// A failure worth another attempt after the policy's backoff.
    pub fn transient(error: E) -> Self {
        Self::retry_after(error, None)
    }

    /// A failure worth another attempt after `after` (the server's `Retry-After`) or, without
    /// one, after the policy's backoff.
    pub fn retry_after(error: E, after: Option<Duration>) -> Self {
        Failure {
            error,
            retry: Retry::Yes(after),
        }
    }
}

/// Why a call ended without a result.
#[derive(Debug, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// The last attempt's error: not worth retrying, or the retries are used up.
    Failed(E),
    /// The next attempt was due only after `wait`, which would pass the deadline or is longer
    /// than the policy accepts: the call ends now rather than at the deadline.
    WaitTooLong { error: E, wait: Duration },
    /// The deadline passed during an attempt.
    Deadline,
}

impl RetryPolicy {
    /// Runs `attempt` (given its number, from 1) until it succeeds, fails for good, the
    /// retries are used up, or `deadline` passes. The deadline bounds every attempt and every
    /// wait, so a call never outlives it.
    pub async fn run<T, E, F, Fut>(&self, deadline: Instant, mut attempt: F) -> Result<T, GaveUp<E>>
    where
        E: std::fmt::Display,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        // Set when a wait is refused, so the caller learns why the call ended early.
        let stopped_for = OnceLock::new();
        let mut number = 0u32;
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.first_wait)
            .with_max_delay(self.max_wait)
            .with_factor(2.0)
            .with_max_times(self.retries as usize)
            .with_jitter()
            // Without backon's `std` feature the jitter's generator has a fixed seed: every
            // replica would wait the same "random" times.
            .with_jitter_seed(rand::random());
        let retrying = (|| {
            number += 1;
            attempt(number)
        })
        .retry(backoff)
        .when(|f: &Failure<E>| f.retry != Retry::No)
        .adjust(|f, next| {
            // `next` is `None` once the retries are used up; a `Retry-After` does not add any.
            let backoff = next?;
            let (wait, too_long) = match f.retry {
                Retry::Yes(Some(asked)) => (asked, asked > self.longest_retry_after),
                _ => (backoff, false),
            };
            if too_long || Instant::now() + wait >= deadline {
                let _ = stopped_for.set(wait);
                return None;
            }
            Some(wait)
        })
        .notify(|f, wait| {
            tracing::warn!(
                call = self.name,
                wait_ms = wait.as_millis() as u64,
                error = %f.error,
                "outbound call failed; retrying"
            );
        });
        match tokio::time::timeout_at(deadline, retrying).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(match stopped_for.get() {
                Some(&wait) => GaveUp::WaitTooLong {
                    error: failure.error,
                    wait,
                },
                None => GaveUp::Failed(failure.error),
            }),
            Err(_) => Err(GaveUp::Deadline),
        }
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds) or `retry-after` (seconds).
/// HTTP-date values, negative numbers and NaN are ignored; anything longer than
/// [`MAX_RETRY_AFTER`] (infinity and 1e300 included) reads as that.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
    };
    let secs = number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))?;
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use http::HeaderValue;

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        name: "test",
        retries: 2,
        first_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(4),
        longest_retry_after: Duration::from_secs(8),
    };

    fn in_a_minute() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Runs the policy over scripted attempts; returns the result and the attempts made.
    async fn run(
        policy: RetryPolicy,
        deadline: Instant,
        script: Vec<Result<u32, Failure<&'static str>>>,
    ) -> (Result<u32, GaveUp<&'static str>>, u32) {
        let calls = AtomicU32::new(0);
        let script = std::sync::Mutex::new(script.into_iter());
        let result = policy
            .run(deadline, |n| {
                calls.store(n, Ordering::SeqCst);
                let next = script.lock().unwrap().next();
                async move { next.unwrap_or(Ok(0)) }
            })
            .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_retries_are_used_up() {
        let busy = || Err(Failure::transient("busy"));
        let (result, calls) = run(POLICY, in_a_minute(), vec![busy(), busy(), Ok(7)]).await;
        assert_eq!((result, calls), (Ok(7), 3));
        let (result, calls) = run(POLICY, in_a_minute(), vec![busy(), busy(), busy()]).await;
        assert_eq!((result, calls), (Err(GaveUp::Failed("busy")), 3));
        // A policy that honours no `Retry-After` still waits out its own backoff.
        let own_waits_only = RetryPolicy {
            longest_retry_after: Duration::ZERO,
            ..POLICY
        };
        let (result, calls) = run(own_waits_only, in_a_minute(), vec![busy(), Ok(7)]).await;
        assert_eq!((result, calls), (Ok(7), 2));
    }

    #[tokio::test]
    async fn a_fatal_failure_is_not_retried() {
        let script = vec![Err(Failure::fatal("bad request")), Ok(1)];
        let (result, calls) = run(POLICY, in_a_minute(), script).await;
        assert_eq!((result, calls), (Err(GaveUp::Failed("bad request")), 1));
    }

    #[tokio::test]
    async fn a_retry_after_is_waited_for_only_while_it_fits() {
        let asked = |secs| {
            Err(Failure::retry_after(
                "429",
                Some(Duration::from_secs_f64(secs)),
            ))
        };
        let (result, calls) = run(POLICY, in_a_minute(), vec![asked(0.0), Ok(2)]).await;
        assert_eq!((result, calls), (Ok(2), 2));
        // Longer than the policy accepts: give up at once.
        let (result, calls) = run(POLICY, in_a_minute(), vec![asked(9.0), Ok(2)]).await;
        let wait = Duration::from_secs(9);
        assert_eq!(
            (result, calls),
            (Err(GaveUp::WaitTooLong { error: "429", wait }), 1)
        );
        // Accepted by the policy but past the deadline: give up at once too.
        let soon = Instant::now() + Duration::from_secs(1);
        let (result, calls) = run(POLICY, soon, vec![asked(2.0), Ok(2)]).await;
        let wait = Duration::from_secs(2);
        assert_eq!(
            (result, calls),
            (Err(GaveUp::WaitTooLong { error: "429", wait }), 1)
        );
    }

    #[tokio::test]
    async fn the_deadline_bounds_a_hanging_attempt() {
        let result: Result<(), GaveUp<&str>> = POLICY
            .run(Instant::now() + Duration::from_millis(20), |_| {
                std::future::pending()
            })
            .await;
        assert_eq!(result, Err(GaveUp::Deadline));
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retry_after_is_bounded_before_it_becomes_a_duration() {
        // 1e300 would panic in `Duration::from_secs_f64`; it reads as the longest wait.
        for (raw, expected) in [
            ("1e300", Some(MAX_RETRY_AFTER)),
            ("inf", Some(MAX_RETRY_AFTER)),
            ("NaN", None),
            ("-1", None),
            ("9", Some(Duration::from_secs(9))),
        ] {
            let mut h = HeaderMap::new();
            h.insert("retry-after", HeaderValue::from_static(raw));
            assert_eq!(retry_after(&h), expected, "{raw}");
        }
    }
}
