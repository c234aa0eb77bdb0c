//! HTTP `Range` GETs with retries: one request per attempt, signed per
//! attempt, at most so many in flight per host; 429, 5xx, transport errors
//! and truncated bodies retried with backoff; a signed read refused with 403
//! (an expired SAS) re-signed with a fresh token and repeated once.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Cause, Error, Result};
use crate::fetch::limits::HostLimits;
use crate::fetch::metrics::FetchMetrics;
use crate::fetch::retry::{MAX_RETRY_AFTER, RetryConfig, retry_after};
use crate::fetch::sign::Signer;
use crate::fetch::version::{ObjectVersion, Versions};

/// What one HTTP range read needs from its client.
pub(super) struct Http<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) retry: &'a RetryConfig,
    pub(super) metrics: &'a FetchMetrics,
    pub(super) signer: &'a dyn Signer,
    pub(super) hosts: &'a HostLimits,
    pub(super) versions: &'a Versions,
}

/// Why an attempt failed.
struct Failure {
    /// Status text or what went wrong.
    message: String,
    /// The response's status, if one came.
    status: Option<u16>,
    /// The transport error (without its URL: a signed URL holds a token).
    source: Option<Cause>,
}

/// Whether a failed attempt is worth repeating.
enum Attempt {
    Retry {
        failure: Failure,
        after: Option<Duration>,
    },
    Fatal(Failure),
    /// The file ends at this byte, before the range does (only when reading to EOF).
    Eof(u64),
}

impl Http<'_> {
    /// Bytes `range` of `url` (see `HttpRangeClient::get_range`).
    pub(super) async fn get(&self, url: &str, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        let err = |f: Failure, suffix: String| Error::Http {
            url: url.to_string(),
            status: f.status,
            message: format!(
                "bytes {}..{}: {}{suffix}",
                range.start, range.end, f.message
            ),
            source: f.source,
        };
        let mut attempt = 0u32;
        // A signed read refused (403) is re-signed and repeated once.
        let mut resigned = false;
        let mut cur = range.clone();
        loop {
            let signed = self.signer.sign(url).await?;
            let permit = self.hosts.acquire(url).await;
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let attempted = self.attempt(&signed, url, cur.clone(), to_eof).await;
            drop(permit); // not held during a backoff sleep
            let (failure, after) = match attempted {
                Ok((b, _)) => {
                    self.metrics
                        .bytes
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(Attempt::Fatal(f)) => {
                    if f.status == Some(403) && signed != url {
                        if resigned {
                            return Err(err(f, " (also with a fresh token)".into()));
                        }
                        if self.signer.refused(url, &signed).await {
                            resigned = true;
                            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(url, "signed read refused (403); re-signing once");
                            continue;
                        }
                    }
                    return Err(err(f, String::new()));
                }
                Err(Attempt::Eof(total)) => {
                    if total >= cur.end {
                        let f = Failure {
                            message: format!("HTTP 416 although the file has {total} bytes"),
                            status: Some(416),
                            source: None,
                        };
                        return Err(err(f, String::new()));
                    }
                    if total <= cur.start {
                        return Ok(Bytes::new());
                    }
                    cur = cur.start..total;
                    continue;
                }
                Err(Attempt::Retry { failure, after }) => (failure, after),
            };
            if attempt >= self.retry.max_retries {
                return Err(err(failure, format!(" (after {attempt} retries)")));
            }
            let backoff = after.unwrap_or_else(|| self.retry.backoff(attempt));
            attempt += 1;
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                url,
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                reason = %failure.message,
                "retrying a range read"
            );
            tokio::time::sleep(backoff).await;
        }
    }

    /// One request of `url` (signed); the version the response shows is
    /// recorded under `key` (the unsigned URL).
    async fn attempt(
        &self,
        url: &str,
        key: &str,
        range: Range<u64>,
        to_eof: bool,
    ) -> std::result::Result<(Bytes, ObjectVersion), Attempt> {
        let want = range.end - range.start;
        let resp = self
            .client
            .get(url)
            .header(
                reqwest::header::RANGE,
                format!("bytes={}-{}", range.start, range.end - 1),
            )
            .timeout(self.retry.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let code = Some(status.as_u16());
        let (span, total) = content_range(resp.headers());
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if matches!(status.as_u16(), 206 | 416) {
            self.versions.record(
                key,
                ObjectVersion {
                    size: total,
                    etag: etag.clone(),
                },
            );
        }
        match status.as_u16() {
            206 => {}
            200 => {
                // A server ignoring `Range` sends the whole file: fine if it covers the range.
                let body = resp.bytes().await.map_err(transport)?;
                let len = body.len() as u64;
                let version = ObjectVersion {
                    size: Some(len),
                    etag,
                };
                self.versions.record(key, version.clone());
                if range.start == 0 && (len == want || (to_eof && len < want)) {
                    return Ok((body, version));
                }
                if len >= range.end {
                    return Ok((
                        body.slice(range.start as usize..range.end as usize),
                        version,
                    ));
                }
                return Err(Attempt::Fatal(Failure {
                    message: format!("server ignored Range and sent {len} bytes"),
                    status: code,
                    source: None,
                }));
            }
            416 if to_eof => {
                // Past the end: re-ask for what exists, if anything.
                return match total {
                    Some(t) => Err(Attempt::Eof(t)),
                    None => Ok((Bytes::new(), ObjectVersion::default())),
                };
            }
            429 | 500..=599 => {
                return Err(Attempt::Retry {
                    failure: Failure {
                        message: format!("HTTP {status}"),
                        status: code,
                        source: None,
                    },
                    after: retry_after(resp.headers()).map(|d| d.min(MAX_RETRY_AFTER)),
                });
            }
            _ => {
                return Err(Attempt::Fatal(Failure {
                    message: format!("HTTP {status}"),
                    status: code,
                    source: None,
                }));
            }
        }
        // The span the server says it sends; shorter than asked only at EOF.
        let expect = match total {
            Some(t) if to_eof && t < range.end => t.saturating_sub(range.start),
            _ => want,
        };
        // A 206 for other bytes than those asked for (a proxy or server that
        // moved the range) has the right length but the wrong data: refuse it.
        if let Some((first, last)) = span
            && (first != range.start || last.checked_add(1) != Some(range.start + expect))
        {
            return Err(Attempt::Retry {
                failure: Failure {
                    message: format!(
                        "Content-Range bytes {first}-{last} is not the range asked for ({}..{})",
                        range.start,
                        range.start + expect
                    ),
                    status: code,
                    source: None,
                },
                after: None,
            });
        }
        let body = resp.bytes().await.map_err(transport)?;
        if body.len() as u64 != expect {
            return Err(Attempt::Retry {
                failure: Failure {
                    message: format!("truncated body: {} of {expect} bytes", body.len()),
                    status: code,
                    source: None,
                },
                after: None,
            });
        }
        Ok((body, ObjectVersion { size: total, etag }))
    }
}

fn transport(e: reqwest::Error) -> Attempt {
    // A body cut short surfaces as a decode error from `Response::bytes()`,
    // not a body error: it is a transport failure all the same, so retry it.
    let retry = e.is_connect() || e.is_timeout() || e.is_body() || e.is_decode() || e.is_request();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let failure = Failure {
        message: what.to_string(),
        status: e.status().map(|s| s.as_u16()),
        // The URL is the signed one: dropped, the error names the unsigned href.
        source: Some(Cause::new(e.without_url())),
    };
    if retry {
        Attempt::Retry {
            failure,
            after: None,
        }
    } else {
        Attempt::Fatal(failure)
    }
}

/// `Content-Range: bytes a-b/N` (or `bytes */N`), parsed once: the span
/// `(a, b)` (inclusive) and the total `N`, each where present.
fn content_range(h: &reqwest::header::HeaderMap) -> (Option<(u64, u64)>, Option<u64>) {
    let Some(v) = h
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return (None, None);
    };
    let v = v.trim().strip_prefix("bytes").unwrap_or(v).trim();
    let (span, total) = v.split_once('/').unwrap_or((v, ""));
    let span = span
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    (span, total.trim().parse().ok())
}
