//! What a server said about a file's version, remembered per URL, so that a
//! file that changed under a cached header is noticed.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// The last version seen of each URL, shared by the clones of a client.
#[derive(Debug, Default)]
pub(crate) struct Versions(Mutex<HashMap<String, ObjectVersion>>);

impl Versions {
    /// The version `url`'s last response showed.
    pub(crate) fn get(&self, url: &str) -> Option<ObjectVersion> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(url).cloned()
    }

    /// Remembers `v` for `url`, unless it tells nothing.
    pub(crate) fn record(&self, url: &str, v: ObjectVersion) {
        if v.size.is_some() || v.etag.is_some() {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(url.to_string(), v);
        }
    }
}
