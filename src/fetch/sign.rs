//! Signing asset hrefs before every read: Planetary Computer SAS tokens.
//!
//! Tokens are short-lived (about 45 min anonymous, some arrive already
//! expired), so hrefs are signed at **read time**, never at search time: a
//! long training run then refreshes tokens as they near expiry instead of
//! failing mid-epoch with 403s. Tokens are cached per (storage account,
//! container) and never logged (`Debug` prints no token).

use crate::error::Cause;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Turns an asset href into the URL to read. Applied to every request.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The URL to request for `href`.
    ///
    /// # Errors
    /// When a token cannot be obtained; the error names the token URL.
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>>;
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
}

/// Settings of [`PlanetaryComputerSigner`].
#[derive(Debug, Clone, PartialEq)]
pub struct PcSignerConfig {
    /// Token endpoint base; `{base}/{account}/{container}` is requested.
    /// Default: `$PC_SDK_SAS_URL` or `https://planetarycomputer.microsoft.com/api/sas/v1/token`.
    pub token_url: String,
    /// Optional `Ocp-Apim-Subscription-Key` (longer-lived tokens).
    pub subscription_key: Option<String>,
    /// Refresh a cached token when less than this remains. Default 60 s.
    pub refresh_margin: Duration,
    /// Host suffix of signable hrefs. Default `.blob.core.windows.net`.
    pub host_suffix: String,
    /// Attempts per token request on 429/5xx/transport errors. Default 5.
    pub attempts: u32,
    /// Longest one token request may take (connect, send, read). Default
    /// 30 s: an endpoint that never answers is an error, not a hang.
    pub timeout: Duration,
}

impl Default for PcSignerConfig {
    fn default() -> Self {
        PcSignerConfig {
            token_url: std::env::var("PC_SDK_SAS_URL").unwrap_or_else(|_| {
                "https://planetarycomputer.microsoft.com/api/sas/v1/token".into()
            }),
            subscription_key: std::env::var("PC_SDK_SUBSCRIPTION_KEY").ok(),
            refresh_margin: Duration::from_secs(60),
            host_suffix: ".blob.core.windows.net".into(),
            attempts: 5,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct Token {
    query: String,
    expiry: DateTime<Utc>,
}

/// Signs Azure Blob hrefs with Planetary Computer SAS tokens, one cached
/// token per (account, container), refreshed before `msft:expiry`.
///
/// # Examples
/// ```
/// # tokio_test::block_on(async {
/// use tilestack::{PcSignerConfig, PlanetaryComputerSigner, Signer};
/// let s = PlanetaryComputerSigner::new(PcSignerConfig::default());
/// // not an Azure Blob href: unchanged, no token requested
/// assert_eq!(s.sign("http://127.0.0.1:8089/a.tif").await.unwrap(), "http://127.0.0.1:8089/a.tif");
/// assert_eq!(s.token_requests(), 0);
/// # });
/// ```
pub struct PlanetaryComputerSigner {
    cfg: PcSignerConfig,
    http: reqwest::Client,
    tokens: tokio::sync::Mutex<HashMap<(String, String), Token>>,
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
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// Token requests made so far.
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

    async fn fetch_token(&self, account: &str, container: &str) -> Result<Token> {
        let url = format!(
            "{}/{account}/{container}",
            self.cfg.token_url.trim_end_matches('/')
        );
        let http_err = |message: String, status: Option<u16>, source: Option<Cause>| Error::Http {
            url: url.clone(),
            status,
            message,
            source,
        };
        let bad = |m: &str| http_err(m.to_string(), Some(200), None);
        let (mut last, mut last_status, mut last_source) = (String::new(), None, None);
        for attempt in 0..self.cfg.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
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
                    last_status = None;
                    last_source = Some(Cause::new(e.without_url()));
                    continue;
                }
            };
            let status = resp.status();
            if status.as_u16() == 429 || status.is_server_error() {
                last = format!("status {status}");
                last_status = Some(status.as_u16());
                last_source = None;
                continue;
            }
            if !status.is_success() {
                return Err(http_err(
                    format!("status {status}"),
                    Some(status.as_u16()),
                    None,
                ));
            }
            let v: serde_json::Value = resp.json().await.map_err(|e| {
                http_err(
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
            return Ok(Token { query, expiry });
        }
        Err(http_err(
            format!("no token after {} attempts: {last}", self.cfg.attempts),
            last_status,
            last_source,
        ))
    }
}

impl Signer for PlanetaryComputerSigner {
    fn sign<'a>(&'a self, href: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let Some(key) = self.target(href) else {
                return Ok(href.to_string());
            };
            let margin = chrono::Duration::from_std(self.cfg.refresh_margin)
                .unwrap_or_else(|_| chrono::Duration::seconds(60));
            // Held across the fetch so concurrent readers share one token request.
            let mut tokens = self.tokens.lock().await;
            let fresh = tokens
                .get(&key)
                .filter(|t| t.expiry - Utc::now() > margin)
                .cloned();
            let token = match fresh {
                Some(t) => t,
                None => {
                    let t = self.fetch_token(&key.0, &key.1).await?;
                    tokens.insert(key, t.clone());
                    t
                }
            };
            drop(tokens);
            let sep = if href.contains('?') { '&' } else { '?' };
            Ok(format!("{href}{sep}{}", token.query))
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
}
