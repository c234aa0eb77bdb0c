//! When and how long to wait before trying a failed request again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest `Retry-After` honoured; longer waits are capped to this.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How [`HttpRangeClient`](crate::fetch::HttpRangeClient) retries failed requests: exponential backoff with
/// full jitter on connect errors, timeouts, 429, 5xx and truncated bodies.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tilestack::fetch::RetryConfig;
/// let cfg = RetryConfig { max_retries: 2, ..RetryConfig::default() };
/// assert_eq!(cfg.initial_backoff, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Retries after the first attempt (so at most `1 + max_retries` requests). Default: 4.
    pub max_retries: u32,
    /// Upper bound of the first backoff; doubles per retry. Default: 100 ms.
    pub initial_backoff: Duration,
    /// Cap on any one backoff. Default: 5 s.
    pub max_backoff: Duration,
    /// Timeout of one request, connect to last body byte. Default: 30 s.
    pub request_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A number in `[0, 1)`, different per call; good enough to spread retries.
pub(super) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryConfig {
    /// Full jitter: uniform in `[0, min(max, initial·2^attempt)]`.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_backoff);
        cap.mul_f64(jitter())
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP-date
/// (a date already past is no wait). Uncapped: callers cap it.
pub(super) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 syntax.
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(with("12"), Some(Duration::from_secs(12)));
        assert_eq!(with(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(with("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(100))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let d = with(&soon).unwrap();
        assert!(
            d > Duration::from_secs(90) && d <= Duration::from_secs(100),
            "{d:?}"
        );
        assert_eq!(with("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn jitter_in_unit_interval() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn backoff_is_capped() {
        let cfg = RetryConfig::default();
        for attempt in 0..40 {
            assert!(cfg.backoff(attempt) <= cfg.max_backoff);
        }
    }
}
