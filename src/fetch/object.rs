//! Object-store hrefs: `s3://bucket/key`, `gs://bucket/key` and
//! `az://container/key` (also `s3a`, `azure`, `adl`, and
//! `abfs[s]://container@account.dfs.core.windows.net/key`), read through the
//! [`object_store`] crate.
//!
//! [`ObjectStores`] maps each (scheme, bucket) to one store. A store is built
//! on first use from the environment, the way `object_store`'s builders read
//! it (`AmazonS3Builder::from_env()` and friends): `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! (or the instance's credentials), `AWS_ALLOW_HTTP`, `AWS_SKIP_SIGNATURE`
//! for public buckets; `GOOGLE_*` for GCS; `AZURE_*` for Azure. To configure a
//! bucket in code instead (tests, several endpoints in one process), build the
//! store yourself and [`register`](ObjectStores::register) it.
//!
//! Callers normally never touch this module: [`HttpRangeClient`] owns an
//! `ObjectStores` (shared by its clones) and dispatches these schemes to it,
//! so COG reads work on `s3://` hrefs unchanged. Create the registry once and
//! share it: every store keeps its own connection pool and credential cache.
//!
//! [`HttpRangeClient`]: crate::fetch::HttpRangeClient

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
/// The `object_store` crate this module builds on, re-exported so that a
/// store you [`register`](ObjectStores::register) has the matching version.
pub use object_store;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt};

use crate::error::{Cause, Error, Result};
use crate::fetch::metrics::FetchMetrics;
use crate::fetch::retry::RetryConfig;
use crate::fetch::scheme::Cloud;
use crate::fetch::version::{ObjectVersion, Versions};

/// An object-store href split into the store it lives in and its key.
///
/// # Examples
/// ```
/// use tilestack::fetch::{Cloud, ObjectUrl};
/// let u = ObjectUrl::parse("s3://sentinel-cogs/tiles/10/S/EG/B04.tif")?;
/// assert_eq!(u.cloud, Cloud::S3);
/// assert_eq!(u.store_key, "s3://sentinel-cogs");
/// assert_eq!(u.key.as_ref(), "tiles/10/S/EG/B04.tif");
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// Which cloud.
    pub cloud: Cloud,
    /// `scheme://bucket` (`scheme://container@account…` for `abfs[s]`), the
    /// registry key; aliases are normalised (`s3a` → `s3`, `azure`/`adl` → `az`).
    pub store_key: String,
    /// The object's key inside the bucket, percent-decoded.
    pub key: Path,
}

impl ObjectUrl {
    /// Splits `href` into store and key.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `href` is not a URL, its scheme is not an
    /// object-store scheme, it names no bucket, or its key is not a valid
    /// object path.
    pub fn parse(href: &str) -> Result<ObjectUrl> {
        let invalid = |m: String| Error::invalid("object store URL", format!("{href}: {m}"));
        let url = url::Url::parse(href)
            .map_err(|e| Error::invalid_because("object store URL", href, e))?;
        let (cloud, scheme) = match url.scheme() {
            "s3" | "s3a" => (Cloud::S3, "s3"),
            "gs" => (Cloud::Gcs, "gs"),
            "az" | "azure" | "adl" => (Cloud::Azure, "az"),
            s @ ("abfs" | "abfss") => (Cloud::Azure, s),
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?} (expected s3, s3a, gs, az, azure, adl, abfs or abfss)"
                )));
            }
        };
        let bucket = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid(format!("no bucket (expected {scheme}://BUCKET/KEY)")))?;
        let authority = match url.username() {
            "" => bucket.to_string(),
            user => format!("{user}@{bucket}"),
        };
        let key = Path::from_url_path(url.path()).map_err(|e| {
            Error::invalid_because(
                "object store URL",
                format!("{href}: not a valid object path"),
                e,
            )
        })?;
        Ok(ObjectUrl {
            cloud,
            store_key: format!("{scheme}://{authority}"),
            key,
        })
    }
}

/// One [`ObjectStore`] per (scheme, bucket): built lazily from the
/// environment, or registered by the caller. Share one registry (in an
/// [`Arc`]) per process; [`HttpRangeClient`](crate::fetch::HttpRangeClient)
/// and its clones do.
///
/// Stores built here retry the way the client does: our [`RetryConfig`] maps
/// onto `object_store`'s (`max_retries`; `initial_backoff` and `max_backoff`
/// with base 2; `request_timeout` as the per-request timeout), whose retries
/// cover connect errors, timeouts, 429 and 5xx. Those retries happen inside
/// `object_store`, so they are not counted in
/// [`FetchMetrics::retries`](crate::fetch::metrics::FetchMetrics::retries). Stores
/// you register keep their own retry settings.
///
/// # Examples
/// Read from a MinIO (or other S3-compatible) server configured in code
/// rather than from `AWS_*` variables:
/// ```no_run
/// # tokio_test::block_on(async {
/// use std::sync::Arc;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::HttpRangeClient;
/// use tilestack::fetch::object_store::aws::AmazonS3Builder;
///
/// let client = HttpRangeClient::new(RetryConfig::default())?;
/// let minio = AmazonS3Builder::new()
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_allow_http(true)
///     .with_region("us-east-1")
///     .with_bucket_name("cogs")
///     .with_access_key_id("minioadmin")
///     .with_secret_access_key("minioadmin")
///     .build()
///     .expect("a valid S3 configuration");
/// client.object_stores().register("s3://cogs", Arc::new(minio))?;
/// let head = client.get_range("s3://cogs/scene/B04.tif", 0..16).await?;
/// assert_eq!(head.len(), 16);
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug)]
pub struct ObjectStores {
    retry: RetryConfig,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Default for ObjectStores {
    /// A registry whose stores retry with [`RetryConfig::default()`].
    fn default() -> Self {
        ObjectStores::new(&RetryConfig::default())
    }
}

impl ObjectStores {
    /// An empty registry; stores it builds use `retry` (see the type docs).
    pub fn new(retry: &RetryConfig) -> Self {
        ObjectStores {
            retry: retry.clone(),
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Serve every href under `url_prefix` (`s3://bucket`, `gs://bucket/`,
    /// `az://container`, `abfss://container@account.dfs.core.windows.net`)
    /// from `store`, replacing any store built or registered for it before.
    /// Keys are passed to `store` relative to the bucket, so build it for
    /// that bucket.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `url_prefix` is not an object-store URL or has
    /// a path below the bucket (one store serves a whole bucket).
    pub fn register(&self, url_prefix: &str, store: Arc<dyn ObjectStore>) -> Result<()> {
        let u = ObjectUrl::parse(url_prefix)?;
        if !u.key.as_ref().is_empty() {
            return Err(Error::invalid(
                "object store prefix",
                format!("{url_prefix}: expected scheme://bucket without a key"),
            ));
        }
        self.lock().insert(u.store_key, store);
        Ok(())
    }

    /// The store serving `href` and the object's key in it, building the
    /// store from the environment on first use.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `href` is not an object-store URL or the
    /// store's configuration is incomplete or malformed (`object_store`'s
    /// error, naming the missing setting, is its source).
    pub fn resolve(&self, href: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let u = ObjectUrl::parse(href)?;
        if let Some(s) = self.lock().get(&u.store_key) {
            return Ok((s.clone(), u.key));
        }
        // Built outside the lock: builders may read credential files. Two
        // racing first uses build twice and keep the first; that is harmless.
        let built = self.build(&u).map_err(|e| {
            Error::invalid_because("object store configuration", u.store_key.clone(), e)
        })?;
        let store = self.lock().entry(u.store_key).or_insert(built).clone();
        Ok((store, u.key))
    }

    fn build(&self, u: &ObjectUrl) -> object_store::Result<Arc<dyn ObjectStore>> {
        use object_store::ClientConfigKey::Timeout;
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        let retry = self.object_store_retry();
        // humantime syntax, which `object_store` parses.
        let timeout = format!("{}ms", self.retry.request_timeout.as_millis());
        let url = &u.store_key;
        Ok(match u.cloud {
            Cloud::S3 => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_config(AmazonS3ConfigKey::Client(Timeout), timeout)
                    .build()?,
            ),
            Cloud::Gcs => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_config(GoogleConfigKey::Client(Timeout), timeout)
                    .build()?,
            ),
            Cloud::Azure => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_config(AzureConfigKey::Client(Timeout), timeout)
                    .build()?,
            ),
        })
    }

    /// Our retry policy in `object_store`'s terms.
    fn object_store_retry(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: self.retry.initial_backoff,
                max_backoff: self.retry.max_backoff,
                base: 2.0,
            },
            max_retries: self.retry.max_retries as usize,
            ..object_store::RetryConfig::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        // Every mutation is a single insert, so a poisoned map is consistent.
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes `range` of the object `key` in `store` (href `url`), with
/// [`HttpRangeClient::get_range`](crate::fetch::HttpRangeClient::get_range)'s
/// contract: exactly the range, or with `to_eof` what exists of it. The
/// object's size and ETag are recorded under `url`. Errors name the byte
/// range; `object_store`'s error is kept as the cause.
pub(super) async fn read_object(
    url: &str,
    store: &dyn ObjectStore,
    key: &Path,
    range: Range<u64>,
    to_eof: bool,
    metrics: &FetchMetrics,
    versions: &Versions,
) -> Result<Bytes> {
    let err = |message: String, source: Option<object_store::Error>| Error::Http {
        url: url.to_string(),
        status: None,
        message: format!("bytes {}..{}: {message}", range.start, range.end),
        source: source.map(Cause::new),
    };
    // A bounded range past the end comes back clipped (`result.range`);
    // one starting at or past the end is an error (HTTP 416), told apart
    // from other errors below by the object's size.
    let opts = GetOptions::new().with_range(Some(range.clone()));
    let got = store.get_opts(key, opts).await;
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    let failure = match got {
        Ok(res) => {
            let (got, size) = (res.range.clone(), res.meta.size);
            versions.record(
                url,
                ObjectVersion {
                    size: Some(size),
                    etag: res.meta.e_tag.clone(),
                },
            );
            let bytes = res
                .bytes()
                .await
                .map_err(|e| err("reading the body".into(), Some(e)))?;
            metrics
                .bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if got.end - got.start != bytes.len() as u64 {
                return Err(err(
                    format!(
                        "truncated body: {} of {} bytes",
                        bytes.len(),
                        got.end - got.start
                    ),
                    None,
                ));
            }
            if got != range && !to_eof {
                return Err(err(format!("the object has only {size} bytes"), None));
            }
            return Ok(bytes);
        }
        Err(e) => e,
    };
    if matches!(failure, object_store::Error::NotFound { .. }) {
        return Err(err("not found".into(), Some(failure)));
    }
    let head = store.head(key).await;
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    if let Ok(meta) = &head {
        versions.record(
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
                Err(err(
                    format!("the object has only {} bytes", meta.size),
                    None,
                ))
            }
        }
        _ => Err(err("request failed".into(), Some(failure))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::scheme::is_object_store_url;

    fn split(href: &str) -> (Cloud, String, String) {
        let u = ObjectUrl::parse(href).unwrap();
        (u.cloud, u.store_key, u.key.to_string())
    }

    #[test]
    fn parses_bucket_and_key() {
        assert_eq!(
            split("s3://bucket/a/b/B04.tif"),
            (Cloud::S3, "s3://bucket".into(), "a/b/B04.tif".into())
        );
        assert_eq!(
            split("s3a://bucket/k"),
            (Cloud::S3, "s3://bucket".into(), "k".into())
        );
        assert_eq!(
            split("gs://gcp-public-data-sentinel-2/tiles/10/S/EG/x.tif"),
            (
                Cloud::Gcs,
                "gs://gcp-public-data-sentinel-2".into(),
                "tiles/10/S/EG/x.tif".into()
            )
        );
        assert_eq!(
            split("az://container/dir/x.tif"),
            (Cloud::Azure, "az://container".into(), "dir/x.tif".into())
        );
        assert_eq!(
            split("azure://container/x.tif"),
            (Cloud::Azure, "az://container".into(), "x.tif".into())
        );
        assert_eq!(
            split("abfss://fs@acct.dfs.core.windows.net/d/x.tif"),
            (
                Cloud::Azure,
                "abfss://fs@acct.dfs.core.windows.net".into(),
                "d/x.tif".into()
            )
        );
    }

    #[test]
    fn keys_are_percent_decoded() {
        let (_, _, key) = split("s3://b/with%20space/x.tif");
        assert_eq!(key, "with space/x.tif");
    }

    #[test]
    fn bucket_only_has_an_empty_key() {
        assert_eq!(
            split("s3://bucket/"),
            (Cloud::S3, "s3://bucket".into(), String::new())
        );
        assert_eq!(
            split("gs://bucket"),
            (Cloud::Gcs, "gs://bucket".into(), String::new())
        );
    }

    #[test]
    fn rejects_unknown_schemes_and_missing_buckets() {
        for (href, want) in [
            ("ftp://host/x.tif", "unsupported scheme \"ftp\""),
            ("https://host/x.tif", "unsupported scheme \"https\""),
            ("s3:///key", "no bucket"),
            ("not a url", "relative URL"),
        ] {
            // the URL parser's error ("relative URL") is the source: chain prints it
            let e = ObjectUrl::parse(href).unwrap_err().chain();
            assert!(e.contains(href) && e.contains(want), "{href}: {e}");
        }
    }

    #[test]
    fn recognises_schemes() {
        for h in [
            "s3://b/k",
            "S3://b/k",
            "gs://b/k",
            "az://c/k",
            "abfss://c@a/k",
        ] {
            assert!(is_object_store_url(h), "{h}");
        }
        for h in ["http://h/k", "https://h/k", "file:///k", "/k", "s3:/k"] {
            assert!(!is_object_store_url(h), "{h}");
        }
    }

    #[test]
    fn stores_are_built_once_per_bucket() {
        // S3 builders need no credentials up front (they are looked up per
        // request), so this builds without any AWS_* variables set.
        let reg = ObjectStores::default();
        let (a, _) = reg.resolve("s3://bucket-a/x.tif").unwrap();
        let (a2, _) = reg.resolve("s3a://bucket-a/y.tif").unwrap();
        let (b, _) = reg.resolve("s3://bucket-b/x.tif").unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn registered_store_serves_its_bucket_only() {
        let reg = ObjectStores::default();
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        reg.register("s3://mine/", mem.clone()).unwrap();
        let (s, key) = reg.resolve("s3a://mine/x/y.tif").unwrap();
        assert!(Arc::ptr_eq(&s, &mem));
        assert_eq!(key.as_ref(), "x/y.tif");
        let e = reg.register("s3://mine/sub", mem).unwrap_err().to_string();
        assert!(e.contains("without a key"), "{e}");
    }
}
