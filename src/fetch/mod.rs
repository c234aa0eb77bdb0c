//! Moving bytes: byte ranges of remote and local files ([`HttpRangeClient`]):
//! `http(s)://` with retries, per-host limits and signing, `file://`, and
//! (feature `cloud`) `s3://`, `gs://`, `az://` through `object_store`; nearby
//! ranges coalesced into one request; counters in [`FetchMetrics`].
//!
//! Create **one** [`HttpRangeClient`] per process and clone it into every
//! reader: clones share the connection pool, the per-host limits and the
//! metrics. Nothing here decodes; decoding lives in the COG reader and runs
//! on blocking threads.
//!
//! May import: [`crate::error`], [`crate::units`].

pub(crate) mod coalesce;
pub(crate) mod file;
pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod metrics;
#[cfg(feature = "cloud")]
pub(crate) mod object;
pub(crate) mod retry;
pub(crate) mod scheme;
pub(crate) mod sign;
pub(crate) mod version;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
pub use coalesce::{DEFAULT_COALESCE_GAP, coalesce};
use futures::stream::{self, StreamExt, TryStreamExt};
pub use limits::DEFAULT_PER_HOST;
use limits::HostLimits;
pub use metrics::FetchMetrics;
#[cfg(feature = "cloud")]
pub use object::{ObjectStores, ObjectUrl, object_store};
pub use retry::RetryConfig;
pub use scheme::{Cloud, is_object_store_url};
pub use sign::{NoSigner, PcSignerConfig, PlanetaryComputerSigner, Signer};
pub use version::ObjectVersion;
use version::Versions;

use crate::error::{Cause, Error, Result};

/// Merged requests in flight at once per [`HttpRangeClient::get_ranges`] call.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// An HTTP client for byte ranges of remote files: retries, coalescing and
/// bounded concurrency. Cloning shares the connection pool and metrics.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::fetch::RetryConfig;
/// use tilestack::HttpRangeClient;
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
    versions: Arc<Versions>,
    #[cfg(feature = "cloud")]
    stores: Arc<ObjectStores>,
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
                status: None,
                message: "building the HTTP client".into(),
                source: Some(Cause::new(e)),
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
            versions: Arc::new(Versions::default()),
            #[cfg(feature = "cloud")]
            stores: Arc::new(ObjectStores::new(&retry)),
            retry,
        }
    }

    /// The version of `url` its last response showed (`None` before any
    /// response). Clones share these records.
    pub fn object_version(&self, url: &str) -> Option<ObjectVersion> {
        self.versions.get(url)
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
    /// gets a fresh one, and a signed read refused with 403 (e.g. an expired
    /// SAS) is reported to [`Signer::refused`] and, when it says so, re-signed
    /// and repeated once; caches and error messages keep the unsigned href,
    /// so tokens never reach logs.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = signer;
        self
    }

    /// Serve `s3://`, `gs://` and `az://` hrefs from `stores` instead of
    /// this client's own registry (e.g. to share one registry, with stores
    /// registered in it, between clients).
    #[cfg(feature = "cloud")]
    pub fn with_object_stores(mut self, stores: Arc<ObjectStores>) -> Self {
        self.stores = stores;
        self
    }

    /// The registry serving `s3://`, `gs://` and `az://` hrefs, shared by this
    /// client's clones: [`register`](ObjectStores::register) stores here.
    #[cfg(feature = "cloud")]
    pub fn object_stores(&self) -> &Arc<ObjectStores> {
        &self.stores
    }

    /// Count into `metrics` instead (e.g. the ones of a [`TileCache`](crate::cog::cache::TileCache)).
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

    /// The coalesce gap: ranges of one file closer than this many bytes are
    /// fetched in one request (see [`with_coalesce_gap`](Self::with_coalesce_gap)).
    ///
    /// ```
    /// let c = tilestack::HttpRangeClient::new(tilestack::fetch::RetryConfig::default()).unwrap();
    /// assert_eq!(c.coalesce_gap(), tilestack::fetch::DEFAULT_COALESCE_GAP);
    /// assert_eq!(c.with_coalesce_gap(0).coalesce_gap(), 0);
    /// ```
    pub fn coalesce_gap(&self) -> u64 {
        self.coalesce_gap
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
                    .ok_or_else(|| {
                        Error::http(
                            url,
                            format!("bytes {}..{}: lost while coalescing", r.start, r.end),
                        )
                    })?;
                let (s, e) = ((r.start - m.start) as usize, (r.end - m.start) as usize);
                Ok(b.slice(s..e))
            })
            .collect()
    }

    /// One range read, dispatched by scheme.
    async fn fetch(&self, url: &str, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        if let Some(path) = url.strip_prefix("file://") {
            let path = std::path::PathBuf::from(path);
            return file::read_file(url, path, range, to_eof, &self.metrics, &self.versions).await;
        }
        if is_object_store_url(url) {
            return self.fetch_object(url, range, to_eof).await;
        }
        let http = http::Http {
            client: &self.client,
            retry: &self.retry,
            metrics: &self.metrics,
            signer: self.signer.as_ref(),
            hosts: &self.hosts,
            versions: &self.versions,
        };
        http.get(url, range, to_eof).await
    }

    #[cfg(feature = "cloud")]
    async fn fetch_object(&self, url: &str, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        let (store, key) = self.stores.resolve(url).map_err(|e| Error::Http {
            url: url.to_string(),
            status: None,
            message: format!("bytes {}..{}", range.start, range.end),
            source: Some(Cause::new(e)),
        })?;
        let _permit = self.hosts.acquire(url).await;
        object::read_object(
            url,
            store.as_ref(),
            &key,
            range,
            to_eof,
            &self.metrics,
            &self.versions,
        )
        .await
    }

    #[cfg(not(feature = "cloud"))]
    async fn fetch_object(&self, url: &str, range: Range<u64>, _to_eof: bool) -> Result<Bytes> {
        Err(Error::http(
            url,
            format!(
                "bytes {}..{}: object-store hrefs need tilestack's `cloud` feature",
                range.start, range.end
            ),
        ))
    }
}
