//! Moving bytes: HTTP `Range` reads with retries and coalescing
//! ([`HttpRangeClient`]), request counters ([`FetchMetrics`]) and the one
//! byte-bounded cache of decoded COG tiles shared by every reader
//! ([`TileCache`]).
//!
//! Create **one** [`HttpRangeClient`] and **one** [`TileCache`] per process and
//! clone them into every reader: both are cheap handles over shared state, and
//! a cache per reader would neither bound memory nor de-duplicate fetches.
//! Nothing here decodes; decoding lives in [`crate::cog`] and runs on blocking
//! threads.

use crate::sign::{NoSigner, Signer};
use crate::store::ObjectStores;
use crate::{Error, Result};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Ranges closer than this many bytes are fetched in one request. The
/// default, 1 KiB, merges tiles that touch (this crate's COGs) or are
/// separated only by GDAL's 4-byte size leader and trailer, so a row of tiles
/// is one request and at most a few bytes per merge are fetched needlessly.
/// Raise it (object_store uses 1 MiB) to trade wasted bytes for fewer round
/// trips on high-latency stores.
pub const DEFAULT_COALESCE_GAP: u64 = 1024;
/// Merged requests in flight at once per [`HttpRangeClient::get_ranges`] call.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The longest `Retry-After` honoured; longer waits are capped to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How [`HttpRangeClient`] retries failed requests: exponential backoff with
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

/// Request and cache counters, shared by every clone of a client or cache.
///
/// # Examples
/// ```
/// use tilestack::fetch::FetchMetrics;
/// let m = FetchMetrics::default();
/// assert_eq!((m.requests(), m.bytes(), m.cache_hits()), (0, 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct FetchMetrics {
    requests: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    evictions: AtomicU64,
}

impl FetchMetrics {
    /// HTTP requests sent, retries included (for `s3://`, `gs://` and `az://`
    /// hrefs, one per `object_store` call: its internal retries are not seen).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Body bytes received in successful responses.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Requests that were retried (by this client; not `object_store`'s own).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Tile lookups answered from the cache (or from a fetch already in flight).
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }
    /// Tile lookups that started a fetch.
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }
    /// Tiles dropped from the cache to stay within its byte budget.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// An HTTP client for byte ranges of remote files: retries, coalescing and
/// bounded concurrency. Cloning shares the connection pool and metrics.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::fetch::{HttpRangeClient, RetryConfig};
/// let client = HttpRangeClient::new(RetryConfig::default())?;
/// let head = client.get_range("http://127.0.0.1:8080/data/a/B04.tif", 0..16).await?;
/// assert_eq!(head.len(), 16);
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HttpRangeClient {
    client: reqwest::Client,
    retry: RetryConfig,
    metrics: Arc<FetchMetrics>,
    coalesce_gap: u64,
    concurrency: usize,
    signer: Arc<dyn Signer>,
    hosts: Arc<HostLimits>,
    versions: Arc<Mutex<HashMap<String, ObjectVersion>>>,
    stores: Arc<ObjectStores>,
}

/// What a server said about a file's version in its last response: the
/// total size (`Content-Range: bytes a-b/N`, or a local file's length) and
/// the `ETag`. Used to notice a file that changed under a cached header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Total size in bytes, when the response told it.
    pub size: Option<u64>,
    /// The `ETag` header, when sent.
    pub etag: Option<String>,
}

impl ObjectVersion {
    /// Whether `other` is certainly another version: a known size or ETag
    /// that differs (unknown fields never count as a change).
    ///
    /// # Examples
    /// ```
    /// use tilestack::fetch::ObjectVersion;
    /// let v = |size, etag: Option<&str>| ObjectVersion { size, etag: etag.map(String::from) };
    /// assert!(v(Some(10), None).differs(&v(Some(11), None)));
    /// assert!(v(Some(10), Some("a")).differs(&v(Some(10), Some("b"))));
    /// assert!(!v(Some(10), None).differs(&v(None, Some("b"))));
    /// ```
    pub fn differs(&self, other: &ObjectVersion) -> bool {
        let size = matches!((self.size, other.size), (Some(a), Some(b)) if a != b);
        let etag = matches!((&self.etag, &other.etag), (Some(a), Some(b)) if a != b);
        size || etag
    }
}

/// Requests in flight to one host (scheme + host + port) at most, by default,
/// across every clone of a client and every caller.
pub const DEFAULT_PER_HOST: usize = 32;

/// One semaphore per host, shared by clones of a client.
#[derive(Debug)]
struct HostLimits {
    per_host: usize,
    map: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl HostLimits {
    fn new(per_host: usize) -> Self {
        HostLimits {
            per_host: per_host.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    async fn acquire(&self, url: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let key = url::Url::parse(url)
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_default();
        let sem = {
            // Short critical section, never held across the await below.
            let mut map = self.map.lock().ok()?;
            map.entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_host)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}

/// Whether a failed attempt is worth repeating.
enum Attempt {
    Retry {
        message: String,
        after: Option<Duration>,
    },
    Fatal(String),
    /// The file ends at this byte, before the range does (only when reading to EOF).
    Eof(u64),
}

impl HttpRangeClient {
    /// A client with its own connection pool and fresh metrics.
    ///
    /// # Errors
    /// [`Error::Http`] when the TLS backend cannot be initialised.
    pub fn new(retry: RetryConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Http {
                url: String::new(),
                message: format!("building the HTTP client: {e}"),
            })?;
        Ok(Self::with_client(client, retry))
    }

    /// A client over an existing `reqwest::Client` (shares its pool).
    pub fn with_client(client: reqwest::Client, retry: RetryConfig) -> Self {
        HttpRangeClient {
            client,
            metrics: Arc::new(FetchMetrics::default()),
            coalesce_gap: DEFAULT_COALESCE_GAP,
            concurrency: DEFAULT_CONCURRENCY,
            signer: Arc::new(NoSigner),
            hosts: Arc::new(HostLimits::new(DEFAULT_PER_HOST)),
            versions: Arc::new(Mutex::new(HashMap::new())),
            stores: Arc::new(ObjectStores::new(&retry)),
            retry,
        }
    }

    /// The version of `url` its last response showed (`None` before any
    /// response). Clones share these records.
    pub fn object_version(&self, url: &str) -> Option<ObjectVersion> {
        let map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(url).cloned()
    }

    fn record_version(&self, url: &str, v: ObjectVersion) {
        if v.size.is_some() || v.etag.is_some() {
            let mut map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(url.to_string(), v);
        }
    }

    /// At most `n` requests in flight per host (default [`DEFAULT_PER_HOST`]),
    /// shared by this client's clones: many concurrent stacks and prefetchers
    /// then queue here instead of flooding one server.
    pub fn with_per_host_limit(mut self, n: usize) -> Self {
        self.hosts = Arc::new(HostLimits::new(n));
        self
    }

    /// Sign every request's URL with `signer` (e.g. Planetary Computer SAS
    /// tokens). Signing happens per attempt, so a retry after a token expired
    /// gets a fresh one; caches and error messages keep the unsigned href, so
    /// tokens never reach logs.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = signer;
        self
    }

    /// Serve `s3://`, `gs://` and `az://` hrefs from `stores` instead of
    /// this client's own registry (e.g. to share one registry, with stores
    /// registered in it, between clients).
    pub fn with_object_stores(mut self, stores: Arc<ObjectStores>) -> Self {
        self.stores = stores;
        self
    }

    /// The registry serving `s3://`, `gs://` and `az://` hrefs, shared by this
    /// client's clones: [`register`](ObjectStores::register) stores here.
    pub fn object_stores(&self) -> &Arc<ObjectStores> {
        &self.stores
    }

    /// Count into `metrics` instead (e.g. the ones of a [`TileCache`]).
    pub fn with_metrics(mut self, metrics: Arc<FetchMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Merge ranges whose gap is **smaller** than `bytes` (default 1 KiB;
    /// 0 = never merge).
    pub fn with_coalesce_gap(mut self, bytes: u64) -> Self {
        self.coalesce_gap = bytes;
        self
    }

    /// Merged requests in flight at once per `get_ranges` call (default 8, min 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The counters this client adds to.
    pub fn metrics(&self) -> &Arc<FetchMetrics> {
        &self.metrics
    }

    /// The retry policy.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.retry
    }

    /// Bytes `range` (end exclusive) of `url`, exactly `range.end - range.start` of them.
    /// `file://` URLs are read from the local disk with the same contract, and
    /// `s3://`, `gs://` and `az://` URLs through [`object_store`] (see
    /// [`ObjectStores`]; its stores do their own retries, mapped from this
    /// client's [`RetryConfig`]).
    ///
    /// Sends `Range: bytes=a-(b-1)` and accepts a 206, or a 200 whose body is
    /// the whole file when the range covers it.
    ///
    /// # Errors
    /// [`Error::Http`] naming the URL and byte range: a non-retryable status
    /// (e.g. 404), a short file, or the last retry's failure.
    pub async fn get_range(&self, url: &str, range: Range<u64>) -> Result<Bytes> {
        self.fetch(url, range, false).await
    }

    /// As [`get_range`](Self::get_range), but a range running past the end of
    /// the file yields the bytes that exist (possibly none) instead of an
    /// error: what readahead of a file of unknown length needs.
    ///
    /// # Errors
    /// As [`get_range`](Self::get_range).
    pub async fn get_range_to_eof(&self, url: &str, range: Range<u64>) -> Result<Bytes> {
        self.fetch(url, range, true).await
    }

    /// Several ranges of one file, in the order given. Ranges less than the
    /// coalesce gap apart are merged into one request, and up to the
    /// concurrency limit of merged requests run at once.
    ///
    /// # Errors
    /// The first [`Error::Http`] of any merged request.
    pub async fn get_ranges(&self, url: &str, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let merged = coalesce(&ranges, self.coalesce_gap);
        let fetched: Vec<(Range<u64>, Bytes)> = stream::iter(merged)
            .map(|r| async move {
                let b = self.get_range(url, r.clone()).await?;
                Ok::<_, Error>((r, b))
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        ranges
            .iter()
            .map(|r| {
                let (m, b) = fetched
                    .iter()
                    .find(|(m, _)| m.start <= r.start && r.end <= m.end)
                    .ok_or_else(|| Error::Http {
                        url: url.to_string(),
                        message: format!("bytes {}..{}: lost while coalescing", r.start, r.end),
                    })?;
                let (s, e) = ((r.start - m.start) as usize, (r.end - m.start) as usize);
                Ok(b.slice(s..e))
            })
            .collect()
    }

    async fn fetch(&self, url: &str, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        let err = |message: String| Error::Http {
            url: url.to_string(),
            message: format!("bytes {}..{}: {message}", range.start, range.end),
        };
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        if let Some(path) = url.strip_prefix("file://") {
            if let Ok(m) = tokio::fs::metadata(path).await {
                self.record_version(
                    url,
                    ObjectVersion {
                        size: Some(m.len()),
                        etag: None,
                    },
                );
            }
            let (bytes, _) = read_file_range(std::path::PathBuf::from(path), range.clone(), to_eof)
                .await
                .map_err(err)?;
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return Ok(bytes);
        }
        if crate::store::is_object_store_url(url) {
            let (store, key) = self.stores.resolve(url).map_err(|e| err(e.to_string()))?;
            let _permit = self.hosts.acquire(url).await;
            return self
                .read_object(url, store.as_ref(), &key, range.clone(), to_eof)
                .await
                .map_err(err);
        }
        let mut attempt = 0u32;
        let mut cur = range.clone();
        loop {
            let signed = self.signer.sign(url).await?;
            let permit = self.hosts.acquire(url).await;
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let attempted = self.attempt(&signed, url, cur.clone(), to_eof).await;
            drop(permit); // not held during a backoff sleep
            let outcome = match attempted {
                // reqwest messages embed the URL: put the unsigned one back.
                Err(Attempt::Retry { message, after }) if signed != url => Err(Attempt::Retry {
                    message: message.replace(&signed, url),
                    after,
                }),
                Err(Attempt::Fatal(m)) if signed != url => {
                    Err(Attempt::Fatal(m.replace(&signed, url)))
                }
                other => other,
            };
            let (message, after) = match outcome {
                Ok((b, _)) => {
                    self.metrics
                        .bytes
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(Attempt::Fatal(m)) => return Err(err(m)),
                Err(Attempt::Eof(total)) => {
                    if total >= cur.end {
                        return Err(err(format!("HTTP 416 although the file has {total} bytes")));
                    }
                    if total <= cur.start {
                        return Ok(Bytes::new());
                    }
                    cur = cur.start..total;
                    continue;
                }
                Err(Attempt::Retry { message, after }) => (message, after),
            };
            if attempt >= self.retry.max_retries {
                return Err(err(format!("{message} (after {attempt} retries)")));
            }
            let backoff = after.unwrap_or_else(|| self.backoff(attempt));
            attempt += 1;
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
        }
    }

    /// Bytes `range` of an object, with [`get_range`](Self::get_range)'s
    /// contract: exactly the range, or with `to_eof` what exists of it. The
    /// object's size and ETag are recorded under `url`.
    async fn read_object(
        &self,
        url: &str,
        store: &dyn ObjectStore,
        key: &ObjectPath,
        range: Range<u64>,
        to_eof: bool,
    ) -> std::result::Result<Bytes, String> {
        // A bounded range past the end comes back clipped (`result.range`);
        // one starting at or past the end is an error (HTTP 416), told apart
        // from other errors below by the object's size.
        let opts = GetOptions::new().with_range(Some(range.clone()));
        let got = store.get_opts(key, opts).await;
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let failure = match got {
            Ok(res) => {
                let (got, size) = (res.range.clone(), res.meta.size);
                self.record_version(
                    url,
                    ObjectVersion {
                        size: Some(size),
                        etag: res.meta.e_tag.clone(),
                    },
                );
                let bytes = res.bytes().await.map_err(|e| e.to_string())?;
                self.metrics
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if got.end - got.start != bytes.len() as u64 {
                    return Err(format!(
                        "truncated body: {} of {} bytes",
                        bytes.len(),
                        got.end - got.start
                    ));
                }
                if got != range && !to_eof {
                    return Err(format!("the object has only {size} bytes"));
                }
                return Ok(bytes);
            }
            Err(e) => e,
        };
        if matches!(failure, object_store::Error::NotFound { .. }) {
            return Err(failure.to_string());
        }
        let head = store.head(key).await;
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(meta) = &head {
            self.record_version(
                url,
                ObjectVersion {
                    size: Some(meta.size),
                    etag: meta.e_tag.clone(),
                },
            );
        }
        match head {
            Ok(meta) if meta.size <= range.start => {
                if to_eof {
                    Ok(Bytes::new())
                } else {
                    Err(format!("the object has only {} bytes", meta.size))
                }
            }
            _ => Err(failure.to_string()),
        }
    }

    /// Full jitter: uniform in `[0, min(max, initial·2^attempt)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .retry
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.retry.max_backoff);
        cap.mul_f64(jitter())
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
            .map_err(|e| transport(&e))?;
        let status = resp.status();
        let total = content_range_total(resp.headers());
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if matches!(status.as_u16(), 206 | 416) {
            self.record_version(
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
                let body = resp.bytes().await.map_err(|e| transport(&e))?;
                let len = body.len() as u64;
                let version = ObjectVersion {
                    size: Some(len),
                    etag,
                };
                self.record_version(key, version.clone());
                if range.start == 0 && (len == want || (to_eof && len < want)) {
                    return Ok((body, version));
                }
                if len >= range.end {
                    return Ok((
                        body.slice(range.start as usize..range.end as usize),
                        version,
                    ));
                }
                return Err(Attempt::Fatal(format!(
                    "server ignored Range and sent {len} bytes"
                )));
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
                    message: format!("HTTP {status}"),
                    after: retry_after(resp.headers()),
                });
            }
            _ => return Err(Attempt::Fatal(format!("HTTP {status}"))),
        }
        // The span the server says it sends; shorter than asked only at EOF.
        let expect = match total {
            Some(t) if to_eof && t < range.end => t.saturating_sub(range.start),
            _ => want,
        };
        let body = resp.bytes().await.map_err(|e| transport(&e))?;
        if body.len() as u64 != expect {
            return Err(Attempt::Retry {
                message: format!("truncated body: {} of {expect} bytes", body.len()),
                after: None,
            });
        }
        Ok((body, ObjectVersion { size: total, etag }))
    }
}

fn transport(e: &reqwest::Error) -> Attempt {
    // Include the cause chain: reqwest's own message omits it.
    let mut message = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    // A body cut short surfaces as a decode error from `Response::bytes()`,
    // not a body error: it is a transport failure all the same, so retry it.
    if e.is_connect() || e.is_timeout() || e.is_body() || e.is_decode() || e.is_request() {
        Attempt::Retry {
            message,
            after: None,
        }
    } else {
        Attempt::Fatal(message)
    }
}

/// Bytes `range` of a local file (`file://` hrefs), with the same contract
/// as an HTTP range read: exactly the range, or up to the end with `to_eof`.
async fn read_file_range(
    path: std::path::PathBuf,
    range: Range<u64>,
    to_eof: bool,
) -> std::result::Result<(Bytes, u64), String> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        let end = if to_eof {
            range.end.min(len)
        } else {
            range.end
        };
        if end > len {
            return Err(format!("the file has only {len} bytes"));
        }
        if range.start >= end {
            return Ok((Bytes::new(), len));
        }
        f.seek(SeekFrom::Start(range.start))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; (end - range.start) as usize];
        f.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok((Bytes::from(buf), len))
    })
    .await
    .map_err(|e| format!("file read task: {e}"))?
}

/// The `N` of `Content-Range: bytes a-b/N` or `bytes */N`.
fn content_range_total(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = h
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// A number in `[0, 1)`, different per call; good enough to spread retries.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sorted, merged ranges covering `ranges`; ranges whose gap is `< gap` merge.
pub(crate) fn coalesce(ranges: &[Range<u64>], gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start < last.end || r.start - last.end < gap => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// Key of one decoded tile: `(href, IFD index, tile column, tile row)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TileKey {
    /// The COG's URL.
    pub href: String,
    /// IFD index (0 = full resolution, then overviews).
    pub ifd: usize,
    /// Tile column.
    pub x: usize,
    /// Tile row.
    pub y: usize,
}

/// One decoded tile, or its top rows, row-major. Edge tiles keep their full
/// (padded) size.
///
/// Unsigned 8/16-bit tiles stay in their native samples (half or a quarter
/// of f32's memory, in the cache too); values become f32, with nodata as
/// NaN, only for the pixels a window copies out ([`Tile::copy_row`]).
///
/// A tile read for a window that ends inside it is inflated only down to the
/// window's last row (plus a margin), and keeps its compressed bytes so that
/// a later window reaching further down decodes the rest without a fetch.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Tile width in pixels.
    pub width: usize,
    /// Tile height in pixels (the full tile).
    pub height: usize,
    /// Rows decoded from the top (`rows <= height`).
    pub rows: usize,
    /// The `rows × width` samples.
    pub samples: Samples,
    /// The compressed tile, kept while `rows < height`.
    pub compressed: Option<Bytes>,
}

/// A tile's samples.
#[derive(Debug, Clone)]
pub enum Samples {
    /// f32 values, nodata already NaN.
    F32(Vec<f32>),
    /// Unsigned bytes; `nodata` reads as NaN.
    U8 {
        /// The samples.
        values: Vec<u8>,
        /// The nodata value, if one applies.
        nodata: Option<u8>,
    },
    /// Unsigned 16-bit samples, little-endian bytes; `nodata` reads as NaN.
    U16 {
        /// Two bytes a sample.
        le_bytes: Vec<u8>,
        /// The nodata value, if one applies.
        nodata: Option<u16>,
    },
}

impl Tile {
    /// A fully decoded f32 tile.
    pub fn full(width: usize, height: usize, data: Vec<f32>) -> Tile {
        Tile {
            width,
            height,
            rows: height,
            samples: Samples::F32(data),
            compressed: None,
        }
    }

    /// Bytes this tile holds in the cache (samples + kept compressed bytes).
    pub fn cached_bytes(&self) -> u64 {
        let samples = match &self.samples {
            Samples::F32(v) => v.len() * std::mem::size_of::<f32>(),
            Samples::U8 { values, .. } => values.len(),
            Samples::U16 { le_bytes, .. } => le_bytes.len(),
        };
        (samples + self.compressed.as_ref().map_or(0, Bytes::len)) as u64
    }

    /// Copies row `row`, columns `cols`, into `out` as f32 (nodata → NaN).
    /// Rows at or past [`Tile::rows`] and columns past the width are NaN.
    ///
    /// # Examples
    /// ```
    /// use tilestack::fetch::Tile;
    /// let t = Tile::full(2, 2, vec![1.0, 2.0, 3.0, 4.0]);
    /// let mut out = [0.0f32; 2];
    /// t.copy_row(1, 0..2, &mut out);
    /// assert_eq!(out, [3.0, 4.0]);
    /// ```
    pub fn copy_row(&self, row: usize, cols: Range<usize>, out: &mut [f32]) {
        let n = cols.len().min(out.len());
        let out = &mut out[..n];
        if row >= self.rows || cols.end > self.width {
            out.fill(f32::NAN);
            return;
        }
        let start = row * self.width + cols.start;
        match &self.samples {
            Samples::F32(v) => match v.get(start..start + n) {
                Some(src) => out.copy_from_slice(src),
                None => out.fill(f32::NAN),
            },
            Samples::U8 { values, nodata } => match values.get(start..start + n) {
                Some(src) => {
                    for (o, &b) in out.iter_mut().zip(src) {
                        *o = if Some(b) == *nodata {
                            f32::NAN
                        } else {
                            f32::from(b)
                        };
                    }
                }
                None => out.fill(f32::NAN),
            },
            Samples::U16 { le_bytes, nodata } => match le_bytes.get(2 * start..2 * (start + n)) {
                Some(src) => {
                    let values = src
                        .chunks_exact(2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]]));
                    // nodata outside the loop: each loop stays branch-light
                    match *nodata {
                        Some(nd) => {
                            for (o, v) in out.iter_mut().zip(values) {
                                *o = if v == nd { f32::NAN } else { f32::from(v) };
                            }
                        }
                        None => {
                            for (o, v) in out.iter_mut().zip(values) {
                                *o = f32::from(v);
                            }
                        }
                    }
                }
                None => out.fill(f32::NAN),
            },
        }
    }

    /// Samples `cols` (any order, repeats allowed) of `row` into `out` as
    /// f32, nodata → NaN, with the same values as [`Tile::copy_row`]. A row
    /// not decoded, or a column past the tile, gives NaN.
    ///
    /// ```
    /// use tilestack::fetch::{Samples, Tile};
    /// let t = Tile { width: 3, height: 1, rows: 1, compressed: None,
    ///     samples: Samples::U8 { values: vec![5, 0, 7], nodata: Some(0) } };
    /// let mut out = [0f32; 4];
    /// t.gather_row(0, &[2, 2, 1, 9], &mut out);
    /// assert_eq!(out[..2], [7.0, 7.0]);
    /// assert!(out[2].is_nan() && out[3].is_nan());
    /// ```
    pub fn gather_row(&self, row: usize, cols: &[usize], out: &mut [f32]) {
        let n = cols.len().min(out.len());
        let (cols, out) = (&cols[..n], &mut out[..n]);
        if row >= self.rows {
            out.fill(f32::NAN);
            return;
        }
        let start = row * self.width;
        let w = self.width;
        match &self.samples {
            Samples::F32(v) => {
                let src = v.get(start..start + w).unwrap_or(&[]);
                for (o, &c) in out.iter_mut().zip(cols) {
                    *o = src.get(c).copied().unwrap_or(f32::NAN);
                }
            }
            Samples::U8 { values, nodata } => {
                let src = values.get(start..start + w).unwrap_or(&[]);
                for (o, &c) in out.iter_mut().zip(cols) {
                    *o = match src.get(c) {
                        Some(&b) if Some(b) != *nodata => f32::from(b),
                        _ => f32::NAN,
                    };
                }
            }
            Samples::U16 { le_bytes, nodata } => {
                let src = le_bytes.get(2 * start..2 * (start + w)).unwrap_or(&[]);
                let at = |c: usize| {
                    src.get(2 * c..2 * c + 2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]]))
                };
                // nodata outside the loop: each loop stays branch-light
                match *nodata {
                    Some(nd) => {
                        for (o, &c) in out.iter_mut().zip(cols) {
                            *o = match at(c) {
                                Some(v) if v != nd => f32::from(v),
                                _ => f32::NAN,
                            };
                        }
                    }
                    None => {
                        for (o, &c) in out.iter_mut().zip(cols) {
                            *o = at(c).map_or(f32::NAN, f32::from);
                        }
                    }
                }
            }
        }
    }

    /// The decoded rows as f32 (nodata → NaN), `rows × width` values.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.width];
        for (r, chunk) in out.chunks_exact_mut(self.width.max(1)).enumerate() {
            self.copy_row(r, 0..self.width, chunk);
        }
        out
    }
}

/// A shared decoded tile.
pub type TileData = Arc<Tile>;

/// A tile fetch that several readers may await.
pub(crate) type SharedTile = Shared<BoxFuture<'static, std::result::Result<TileData, Arc<Error>>>>;

#[derive(Debug)]
struct CacheState {
    lru: lru::LruCache<TileKey, TileData>,
    used: u64,
    in_flight: HashMap<TileKey, SharedTile>,
}

/// The one cache of **decoded** tiles ([`Tile`]: inflated, predictor undone,
/// in native samples — 2 bytes a pixel for uint16 — so a hit costs no
/// inflate), bounded in bytes, shared by every thread and every reader.
/// Clones share the same cache.
///
/// Concurrent requests for a tile that is being fetched wait for that fetch
/// instead of starting their own. The lock is a `std::sync::Mutex` that is
/// never held across an `.await`.
///
/// # Examples
/// ```
/// use tilestack::fetch::TileCache;
/// let cache = TileCache::new(256 * 1024 * 1024);
/// assert_eq!(cache.budget(), 256 * 1024 * 1024);
/// assert_eq!(cache.bytes_used(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct TileCache {
    state: Arc<Mutex<CacheState>>,
    budget: u64,
    metrics: Arc<FetchMetrics>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Cached.
    Hit(TileData),
    /// Someone is fetching it: await this.
    Wait(SharedTile),
    /// Nobody has it: the caller must fetch it and [`Claim::complete`] it;
    /// others wait on the shared future.
    Lead(SharedTile, Claim),
}

/// The obligation to fill one in-flight tile. Dropping it unfilled wakes the
/// waiters with an error and frees the slot for a later retry.
pub(crate) struct Claim {
    cache: TileCache,
    key: TileKey,
    tx: Option<futures::channel::oneshot::Sender<std::result::Result<TileData, Arc<Error>>>>,
}

impl Claim {
    /// Stores the result (on success) and wakes everyone waiting for it.
    pub(crate) fn complete(mut self, result: std::result::Result<TileData, Arc<Error>>) {
        self.cache.finish(&self.key, result.as_ref().ok());
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.cache.finish(&self.key, None);
        }
    }
}

impl TileCache {
    /// An empty cache holding at most `budget_bytes` of decoded tiles.
    pub fn new(budget_bytes: u64) -> Self {
        TileCache {
            state: Arc::new(Mutex::new(CacheState {
                lru: lru::LruCache::unbounded(),
                used: 0,
                in_flight: HashMap::new(),
            })),
            budget: budget_bytes,
            metrics: Arc::new(FetchMetrics::default()),
        }
    }

    /// Count hits, misses and evictions into `metrics` (e.g. a client's).
    pub fn with_metrics(mut self, metrics: Arc<FetchMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of decoded tiles held now (always `<= budget()`).
    pub fn bytes_used(&self) -> u64 {
        self.state.lock().map(|s| s.used).unwrap_or(0)
    }

    /// Tiles held now.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.lru.len()).unwrap_or(0)
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters this cache adds to.
    pub fn metrics(&self) -> &Arc<FetchMetrics> {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves consistent state (every
        // mutation below is completed before anything can panic), so recover.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds `key`, or registers the caller as the one fetching it.
    pub(crate) fn lookup(&self, key: &TileKey) -> Lookup {
        let mut s = self.lock();
        if let Some(t) = s.lru.get(key) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(t.clone());
        }
        if let Some(f) = s.in_flight.get(key) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Wait(f.clone());
        }
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = futures::channel::oneshot::channel();
        let fut: BoxFuture<'static, _> = rx
            .map(|r| {
                r.unwrap_or_else(|_| {
                    Err(Arc::new(Error::Http {
                        url: String::new(),
                        message: "tile fetch was abandoned".into(),
                    }))
                })
            })
            .boxed();
        let shared = fut.shared();
        s.in_flight.insert(key.clone(), shared.clone());
        Lookup::Lead(
            shared,
            Claim {
                cache: self.clone(),
                key: key.clone(),
                tx: Some(tx),
            },
        )
    }

    fn finish(&self, key: &TileKey, value: Option<&TileData>) {
        let mut s = self.lock();
        s.in_flight.remove(key);
        let Some(v) = value else { return };
        self.store(&mut s, key, v);
    }

    /// Replaces a partly decoded tile with one decoded further down.
    pub(crate) fn upgrade(&self, key: &TileKey, value: &TileData) {
        let mut s = self.lock();
        if s.lru.peek(key).is_none_or(|old| old.rows < value.rows) {
            self.store(&mut s, key, value);
        }
    }

    fn store(&self, s: &mut CacheState, key: &TileKey, v: &TileData) {
        if let Some(old) = s.lru.put(key.clone(), v.clone()) {
            s.used -= old.cached_bytes();
        }
        s.used += v.cached_bytes();
        while s.used > self.budget {
            let Some((_, old)) = s.lru.pop_lru() else {
                break;
            };
            s.used -= old.cached_bytes();
            self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_small_gaps_only() {
        let r = vec![10..20, 0..5, 5..8, 100..110];
        assert_eq!(coalesce(&r, 0), vec![0..5, 5..8, 10..20, 100..110]);
        assert_eq!(coalesce(&r, 2), vec![0..8, 10..20, 100..110]);
        assert_eq!(coalesce(&r, 3), vec![0..20, 100..110]);
        assert_eq!(coalesce(&r, 1000), vec![0..110]);
        assert_eq!(coalesce(&[0..10, 2..4], 0), vec![0..10]);
    }

    #[test]
    fn cache_stays_within_budget() {
        let cache = TileCache::new(100);
        for i in 0..10 {
            let key = TileKey {
                href: "a".into(),
                ifd: 0,
                x: i,
                y: 0,
            };
            match cache.lookup(&key) {
                Lookup::Lead(_, claim) => {
                    claim.complete(Ok(Arc::new(Tile::full(5, 2, vec![0.0; 10]))))
                }
                _ => panic!("expected a miss"),
            }
            assert!(cache.bytes_used() <= 100);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.metrics().evictions(), 8);
    }

    #[test]
    fn jitter_in_unit_interval() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
