//! Which hrefs go where: `file://` to the local disk, object-store schemes
//! (`s3://`, `gs://`, `az://`, …) to `object_store` (feature `cloud`), the
//! rest to HTTP. Judged by the scheme alone, before anything is read.

/// The cloud a scheme names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Amazon S3 and S3-compatible stores (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage / ADLS Gen2 (`az://`, `azure://`, `adl://`,
    /// `abfs://`, `abfss://`).
    Azure,
}

impl Cloud {
    /// The cloud serving `scheme` (lower case, without `://`), if any.
    ///
    /// # Examples
    /// ```
    /// use tilestack::fetch::Cloud;
    /// assert_eq!(Cloud::from_scheme("s3a"), Some(Cloud::S3));
    /// assert_eq!(Cloud::from_scheme("https"), None);
    /// ```
    pub fn from_scheme(scheme: &str) -> Option<Cloud> {
        match scheme {
            "s3" | "s3a" => Some(Cloud::S3),
            "gs" => Some(Cloud::Gcs),
            "az" | "azure" | "adl" | "abfs" | "abfss" => Some(Cloud::Azure),
            _ => None,
        }
    }
}

/// Whether `href`'s scheme is one `ObjectStores` serves (`s3://`, `gs://`,
/// `az://`, …), judged by its scheme alone.
///
/// # Examples
/// ```
/// assert!(tilestack::fetch::is_object_store_url("gs://bucket/a.tif"));
/// assert!(!tilestack::fetch::is_object_store_url("https://host/a.tif"));
/// ```
pub fn is_object_store_url(href: &str) -> bool {
    href.split_once("://")
        .is_some_and(|(s, _)| Cloud::from_scheme(&s.to_ascii_lowercase()).is_some())
}
