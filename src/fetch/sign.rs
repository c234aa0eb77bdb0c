//! Signing asset hrefs before every read: Planetary Computer SAS tokens.
//!
//! Tokens are short-lived (about 45 min anonymous, some arrive already
//! expired), so hrefs are signed at **read time**, never at search time: a
//! long training run then refreshes tokens as they near expiry instead of
//! failing mid-epoch with 403s. Tokens are cached per (storage account,
//! container) and never logged (`Debug` prints no token).
//!
//! How it behaves against the real service (429s, early refresh, 403s):
//! see [`PlanetaryComputerSigner`] (its docs are rendered, this module's
//! are not).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::error::{Cause, Error, Result};

/// Turns an asset href into the URL to read. Applied to every request.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The URL to request for `href`.
    ///
    /// # Errors
    /// When a token cannot be obtained; the error names the token URL.
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>>;

    /// `signed`, what [`sign`](Self::sign) returned for `href`, was refused
    /// (HTTP 403): forget the credential it carries, so that the next
    /// [`sign`](Self::sign) gets a new one. Returns whether signing again may
    /// help; readers retry a refused read at most once, and only when this
    /// says so. The default, for signers with nothing to refresh: `false`.
    fn refused<'a>(&'a self, href: &'a str, signed: &'a str) -> BoxFuture<'a, bool> {
        let _ = (href, signed);
        Box::pin(async { false })
    }
}

/// Leaves hrefs unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSigner;

impl Signer for NoSigner {
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move { Ok(href.to_string()) })
    }
}

impl<S: Signer + ?Sized> Signer for Arc<S> {
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>> {
        (**self).sign(href)
    }

    fn refused<'a>(&'a self, href: &'a str, signed: &'a str) -> BoxFuture<'a, bool> {
        (**self).refused(href, signed)
    }
}

/// Settings of [`PlanetaryComputerSigner`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tilestack::fetch::PcSignerConfig;
/// let cfg = PcSignerConfig {
///     // give up at once when the endpoint asks for more than 30 s
///     max_retry_wait: Duration::from_secs(30),
///     ..PcSignerConfig::default()
/// };
/// // a 45 min token is refreshed 5 min before it expires,
/// // a 2 min token after 90 s (a quarter of its lifetime before expiry)
/// assert_eq!(cfg.refresh_margin, Duration::from_secs(300));
/// assert_eq!(cfg.refresh_fraction, 0.25);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PcSignerConfig {
    /// Token endpoint base; `{base}/{account}/{container}` is requested.
    /// Default: `$PC_SDK_SAS_URL` or `https://planetarycomputer.microsoft.com/api/sas/v1/token`.
    pub token_url: String,
    /// Optional `Ocp-Apim-Subscription-Key` (longer-lived tokens).
    /// Default: `$PC_SDK_SUBSCRIPTION_KEY`.
    pub subscription_key: Option<String>,
    /// Refresh a cached token when less than this remains before its
    /// `msft:expiry` (but see [`refresh_fraction`](Self::refresh_fraction)).
    /// Default 5 min.
    pub refresh_margin: Duration,
    /// For short-lived tokens: refresh when less than this fraction of the
    /// token's lifetime (from its receipt to `msft:expiry`) remains, if that
    /// is sooner than [`refresh_margin`](Self::refresh_margin) allows. The
    /// margin used is `min(refresh_margin, refresh_fraction × lifetime)`, so
    /// a token living less than the margin is not refetched for every read.
    /// Clamped to `0..=1`. Default 0.25.
    pub refresh_fraction: f64,
    /// Host suffix of signable hrefs. Default `$TILESTACK_SIGN_HOST_SUFFIX`
    /// (a mirror or proxy of Azure Blob Storage, or a test server) or
    /// `.blob.core.windows.net`; the account is the host's first label and
    /// the container the path's first segment.
    pub host_suffix: String,
    /// Attempts per token request on 429/5xx/transport errors. Default 5.
    pub attempts: u32,
    /// Longest one token request may take (connect, send, read). Default
    /// 30 s: an endpoint that never answers is an error, not a hang.
    pub timeout: Duration,
    /// Longest wait honoured when the endpoint answers 429 (or 5xx) with a
    /// hint (`Retry-After`, or a body saying "Try again in N seconds"); a
    /// longer hint is an error at once, naming the URL and the hint, instead
    /// of a stall. Default 60 s.
    pub max_retry_wait: Duration,
}

impl Default for PcSignerConfig {
    fn default() -> Self {
        PcSignerConfig {
            token_url: std::env::var("PC_SDK_SAS_URL").unwrap_or_else(|_| {
                "https://planetarycomputer.microsoft.com/api/sas/v1/token".into()
            }),
            subscription_key: std::env::var("PC_SDK_SUBSCRIPTION_KEY").ok(),
            refresh_margin: Duration::from_secs(300),
            refresh_fraction: 0.25,
            host_suffix: std::env::var("TILESTACK_SIGN_HOST_SUFFIX")
                .unwrap_or_else(|_| ".blob.core.windows.net".into()),
            attempts: 5,
            timeout: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

impl PcSignerConfig {
    /// How long before `expiry` a token received at `now` is refreshed:
    /// `min(refresh_margin, refresh_fraction × (expiry − now))`.
    fn margin_for(&self, now: DateTime<Utc>, expiry: DateTime<Utc>) -> Duration {
        let lifetime = (expiry - now).to_std().unwrap_or(Duration::ZERO);
        let fraction = if self.refresh_fraction.is_finite() {
            self.refresh_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.refresh_margin.min(lifetime.mul_f64(fraction))
    }
}

/// A SAS token (a credential: never logged, no `Debug`).
#[derive(Clone)]
struct Token {
    /// The query string to append, without `?`.
    query: String,
    /// `msft:expiry`.
    expiry: DateTime<Utc>,
    /// From when on the token is refreshed before use.
    refresh_at: DateTime<Utc>,
}

/// A failed token request, kept to hand to the readers that waited for it.
#[derive(Clone)]
struct TokenFailure {
    url: String,
    status: Option<u16>,
    message: String,
    source: Option<Cause>,
}

impl From<TokenFailure> for Error {
    fn from(f: TokenFailure) -> Error {
        Error::Http {
            url: f.url,
            status: f.status,
            message: f.message,
            source: f.source,
        }
    }
}

/// The token of one (account, container) and its one in-flight request.
#[derive(Default)]
struct Slot {
    /// Token requests finished for this key (successful or not): a reader
    /// that sees it move while it waited knows someone asked for it.
    fetched: AtomicU64,
    /// Held across a token request, so that one request serves all waiters.
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<Token>,
    /// The last request's failure, if it failed.
    failure: Option<TokenFailure>,
}

/// Signs Azure Blob hrefs with Planetary Computer SAS tokens, one cached
/// token per (account, container), refreshed before `msft:expiry`.
///
/// How it behaves against the real service:
///
/// - **One token request per container at a time.** Concurrent reads of a
///   container with no fresh token wait for one shared token request (no
///   thundering herd); other containers are not held up. When that request
///   fails, the readers that waited for it get its error instead of each
///   asking again.
/// - **Rate limits (429).** The wait the endpoint asks for, from
///   `Retry-After` or a body such as `{"message": "Rate limit is exceeded.
///   Try again in 12 seconds."}`, is honoured before the next attempt; a
///   hint longer than [`PcSignerConfig::max_retry_wait`] fails at once, and
///   so does running out of [`PcSignerConfig::attempts`], with an error
///   naming the token URL, the status and the hint.
/// - **Early refresh.** A token is refreshed once less than
///   `min(refresh_margin, refresh_fraction × its lifetime)` remains, so a
///   request never leaves with a token about to expire, and short-lived
///   tokens are not refetched for every read. A refresh that fails while the
///   old token is still valid keeps using the old one.
/// - **403 on a signed read** (an expired or revoked SAS):
///   [`HttpRangeClient`](crate::fetch::HttpRangeClient) calls [`Signer::refused`],
///   which drops that token, and re-signs and retries the read **once**.
///
/// # Examples
/// ```
/// # tokio_test::block_on(async {
/// use tilestack::fetch::{PcSignerConfig, PlanetaryComputerSigner, Signer};
/// let s = PlanetaryComputerSigner::new(PcSignerConfig::default());
/// // not an Azure Blob href: unchanged, no token requested
/// assert_eq!(s.sign("http://127.0.0.1:8089/a.tif").await.unwrap(), "http://127.0.0.1:8089/a.tif");
/// assert_eq!(s.token_requests(), 0);
/// # });
/// ```
///
/// Reading through it, with a fresh token fetched once per container:
///
/// ```no_run
/// # async fn f() -> tilestack::Result<()> {
/// use std::sync::Arc;
/// use tilestack::fetch::{PcSignerConfig, PlanetaryComputerSigner, RetryConfig};
/// use tilestack::HttpRangeClient;
/// let signer = PlanetaryComputerSigner::new(PcSignerConfig::default());
/// let client = HttpRangeClient::new(RetryConfig::default())?.with_signer(Arc::new(signer));
/// let head = client
///     .get_range("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/10/S/EG/2019/08/01/B04.tif", 0..16384)
///     .await?;
/// # Ok(()) }
/// ```
pub struct PlanetaryComputerSigner {
    cfg: PcSignerConfig,
    http: reqwest::Client,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for PlanetaryComputerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately no tokens here: they are credentials.
        f.debug_struct("PlanetaryComputerSigner")
            .field("token_url", &self.cfg.token_url)
            .field("token_requests", &self.token_requests())
            .finish_non_exhaustive()
    }
}

impl PlanetaryComputerSigner {
    /// A signer with its own HTTP client.
    pub fn new(cfg: PcSignerConfig) -> Self {
        Self::with_client(cfg, reqwest::Client::new())
    }

    /// A signer sharing an HTTP client.
    pub fn with_client(cfg: PcSignerConfig, http: reqwest::Client) -> Self {
        PlanetaryComputerSigner {
            cfg,
            http,
            slots: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// Token requests made so far (each attempt counts, 429s included).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `(account, container)` when `href` needs signing.
    fn target(&self, href: &str) -> Option<(String, String)> {
        let url = url::Url::parse(href).ok()?;
        let host = url.host_str()?;
        if !host.ends_with(&self.cfg.host_suffix) {
            return None;
        }
        let account = host.split('.').next()?.to_string();
        if account == "ai4edatasetspublicassets" {
            return None; // public account, never signed
        }
        if url
            .query_pairs()
            .any(|(k, _)| k == "st" || k == "se" || k == "sp")
        {
            return None; // already signed
        }
        let container = url.path_segments()?.next()?.to_string();
        if container.is_empty() {
            return None;
        }
        Some((account, container))
    }

    /// The slot of `key`, created on first use.
    fn slot(&self, key: &(String, String)) -> Arc<Slot> {
        // Poisoning cannot leave the map inconsistent (one insert): carry on.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// A token for `key`: the cached one while fresh, else one new request
    /// shared by every caller waiting meanwhile.
    async fn token(&self, key: &(String, String)) -> Result<Token> {
        let slot = self.slot(key);
        let seen = slot.fetched.load(Ordering::SeqCst);
        let mut state = slot.state.lock().await;
        // Someone finished a token request while we waited for the lock.
        let waited = slot.fetched.load(Ordering::SeqCst) != seen;
        let now = Utc::now();
        if let Some(t) = &state.token
            && (now < t.refresh_at || (waited && now < t.expiry))
        {
            return Ok(t.clone());
        }
        if waited && let Some(f) = &state.failure {
            return Err(f.clone().into());
        }
        let fetched = self.fetch_token(&key.0, &key.1).await;
        slot.fetched.fetch_add(1, Ordering::SeqCst);
        match fetched {
            Ok(t) => {
                if t.expiry <= Utc::now() {
                    tracing::warn!(
                        account = %key.0,
                        container = %key.1,
                        expiry = %t.expiry,
                        "the token endpoint issued an already expired token (clock skew?)"
                    );
                }
                state.failure = None;
                state.token = Some(t.clone());
                Ok(t)
            }
            Err(f) => {
                state.failure = Some(f.clone());
                match &state.token {
                    // Refreshing early failed, but the old token still works.
                    Some(old) if Utc::now() < old.expiry => {
                        tracing::warn!(
                            url = %f.url,
                            message = %f.message,
                            expiry = %old.expiry,
                            "token refresh failed; using the current token until it expires"
                        );
                        Ok(old.clone())
                    }
                    _ => Err(f.into()),
                }
            }
        }
    }

    async fn fetch_token(
        &self,
        account: &str,
        container: &str,
    ) -> std::result::Result<Token, TokenFailure> {
        let url = format!(
            "{}/{account}/{container}",
            self.cfg.token_url.trim_end_matches('/')
        );
        let fail = |message: String, status: Option<u16>, source: Option<Cause>| TokenFailure {
            url: url.clone(),
            status,
            message,
            source,
        };
        let bad = |m: &str| fail(m.to_string(), Some(200), None);
        let attempts = self.cfg.attempts.max(1);
        let (mut last, mut last_status, mut last_source) = (String::new(), None, None);
        // The wait before the next attempt, when the last answer asked for one.
        let mut hinted: Option<Duration> = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                let wait = hinted.unwrap_or_else(|| Duration::from_millis(100 << attempt.min(6)));
                tokio::time::sleep(wait).await;
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.http.get(&url).timeout(self.cfg.timeout);
            if let Some(k) = &self.cfg.subscription_key {
                req = req.header("Ocp-Apim-Subscription-Key", k);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = "request failed".into();
                    (last_status, last_source, hinted) =
                        (None, Some(Cause::new(e.without_url())), None);
                    continue;
                }
            };
            let status = resp.status();
            if status.as_u16() == 429 || status.is_server_error() {
                let header = super::retry::retry_after(resp.headers());
                // An unreadable body only loses the hint it might hold.
                let body = resp.text().await.unwrap_or_default();
                let said = rate_limit_message(&body);
                let hint = header.max(said.as_deref().and_then(try_again_in));
                last = match (&hint, &said) {
                    (Some(h), Some(m)) => format!("status {status}, asked to wait {h:?} ({m:?})"),
                    (Some(h), None) => format!("status {status}, asked to wait {h:?}"),
                    (None, _) => format!("status {status}"),
                };
                (last_status, last_source, hinted) = (Some(status.as_u16()), None, hint);
                if let Some(h) = hint
                    && h > self.cfg.max_retry_wait
                {
                    return Err(fail(
                        format!(
                            "{last}: longer than max_retry_wait {:?}, not waiting",
                            self.cfg.max_retry_wait
                        ),
                        last_status,
                        None,
                    ));
                }
                if attempt + 1 < attempts {
                    tracing::warn!(
                        url = %url,
                        status = status.as_u16(),
                        attempt,
                        wait_ms = hint.map(|h| h.as_millis() as u64),
                        "token endpoint busy; retrying"
                    );
                }
                continue;
            }
            if !status.is_success() {
                return Err(fail(
                    format!("status {status}"),
                    Some(status.as_u16()),
                    None,
                ));
            }
            let v: serde_json::Value = resp.json().await.map_err(|e| {
                fail(
                    "token response is not JSON".into(),
                    Some(status.as_u16()),
                    Some(Cause::new(e.without_url())),
                )
            })?;
            let query = v
                .get("token")
                .and_then(|t| t.as_str())
                .ok_or_else(|| bad("token response has no \"token\""))?
                .trim_start_matches('?')
                .to_string();
            let expiry = v
                .get("msft:expiry")
                .and_then(|t| t.as_str())
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
                .ok_or_else(|| bad("token response has no valid \"msft:expiry\""))?;
            let margin = self.cfg.margin_for(Utc::now(), expiry);
            let refresh_at =
                expiry - chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
            tracing::debug!(url = %url, %expiry, %refresh_at, "got a SAS token");
            return Ok(Token {
                query,
                expiry,
                refresh_at,
            });
        }
        Err(fail(
            format!("no token after {attempts} attempts: {last}"),
            last_status,
            last_source,
        ))
    }
}

/// The message of a rate-limit body: its JSON `"message"` (Azure API
/// Management: `{"statusCode": 429, "message": "Rate limit is exceeded. Try
/// again in 12 seconds."}`), else the text itself; at most 200 characters.
fn rate_limit_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let text = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(String::from))
        .unwrap_or_else(|| body.to_string());
    Some(text.chars().take(200).collect())
}

/// The wait in "… Try again in 12 seconds." (seconds unless minutes,
/// hours or milliseconds are said).
fn try_again_in(message: &str) -> Option<Duration> {
    const SAY: &str = "try again in";
    // ASCII lowercasing keeps byte offsets.
    let lower = message.to_ascii_lowercase();
    let rest = lower[lower.find(SAY)? + SAY.len()..].trim_start();
    let digits = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let n: f64 = rest[..digits].parse().ok()?;
    let unit = rest[digits..].trim_start();
    let secs = if unit.starts_with("ms") || unit.starts_with("milli") {
        n / 1000.0
    } else if unit.starts_with("min") {
        n * 60.0
    } else if unit.starts_with("hour") {
        n * 3600.0
    } else {
        n
    };
    Duration::try_from_secs_f64(secs).ok()
}

impl Signer for PlanetaryComputerSigner {
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let Some(key) = self.target(href) else {
                return Ok(href.to_string());
            };
            let token = self.token(&key).await?;
            let sep = if href.contains('?') { '&' } else { '?' };
            Ok(format!("{href}{sep}{}", token.query))
        })
    }

    /// Drops the cached token when `signed` carries it (a token refreshed
    /// meanwhile stays), so the next [`sign`](Signer::sign) fetches one.
    /// `true` for every href this signer signs.
    fn refused<'a>(&'a self, href: &'a str, signed: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(key) = self.target(href) else {
                return false;
            };
            let slot = self.slot(&key);
            let mut state = slot.state.lock().await;
            if state
                .token
                .as_ref()
                .is_some_and(|t| signed.ends_with(&t.query))
            {
                tracing::debug!(account = %key.0, container = %key.1, "SAS token refused (403); dropped");
                state.token = None;
            }
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let s = PlanetaryComputerSigner::new(PcSignerConfig::default());
        assert_eq!(
            s.target("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/10/S/EG/B04.tif"),
            Some(("sentinel2l2a01".into(), "sentinel2-l2".into()))
        );
        assert_eq!(
            s.target("https://ai4edatasetspublicassets.blob.core.windows.net/x/y"),
            None
        );
        assert_eq!(
            s.target("https://a.blob.core.windows.net/c/y?st=1&se=2&sp=rl&sig=x"),
            None
        );
        assert_eq!(s.target("https://example.com/c/y"), None);
        assert!(!format!("{s:?}").contains("sig="));
    }

    #[test]
    fn sign_hints_from_rate_limit_bodies() {
        let pc =
            r#"{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 12 seconds."}"#;
        let m = rate_limit_message(pc).unwrap();
        assert_eq!(m, "Rate limit is exceeded. Try again in 12 seconds.");
        assert_eq!(try_again_in(&m), Some(Duration::from_secs(12)));
        assert_eq!(
            try_again_in("Try again in 1 seconds"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            try_again_in("try again in 1.5s."),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            try_again_in("Try again in 2 minutes"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(try_again_in("Rate limit is exceeded."), None);
        assert_eq!(try_again_in("Try again in a while"), None);
        assert_eq!(rate_limit_message("  "), None);
        assert_eq!(
            rate_limit_message("x".repeat(500).as_str()).unwrap().len(),
            200
        );
    }

    #[test]
    fn sign_margin_is_the_smaller_of_margin_and_lifetime_fraction() {
        let cfg = PcSignerConfig {
            refresh_margin: Duration::from_secs(300),
            refresh_fraction: 0.25,
            ..PcSignerConfig::default()
        };
        let now = Utc::now();
        let at = |secs| now + chrono::Duration::seconds(secs);
        // 45 min anonymous token: 5 min before expiry
        assert_eq!(cfg.margin_for(now, at(45 * 60)), Duration::from_secs(300));
        // 2 min token: a quarter of its life, not refetched for every read
        assert_eq!(cfg.margin_for(now, at(120)), Duration::from_secs(30));
        // already expired: no margin (and no panic)
        assert_eq!(cfg.margin_for(now, at(-10)), Duration::ZERO);
        let odd = PcSignerConfig {
            refresh_fraction: f64::NAN,
            ..cfg.clone()
        };
        assert_eq!(odd.margin_for(now, at(120)), Duration::ZERO);
        let big = PcSignerConfig {
            refresh_fraction: 7.0,
            ..cfg
        };
        assert_eq!(big.margin_for(now, at(120)), Duration::from_secs(120));
    }
}
