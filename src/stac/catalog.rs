//! [`Catalog`]: where scenes come from — a live STAC API and collection,
//! or items already in hand (a snapshot file, a geoparquet, memory).

use crate::error::Result;
use crate::stac::client::StacClient;

/// Where a stack's scenes come from.
#[derive(Debug, Clone)]
pub enum Catalog {
    /// A live STAC API and collection. The client (and its connection pool)
    /// is shared by every search through this catalog: build it once with
    /// [`Catalog::stac`].
    Stac {
        /// The API client.
        client: StacClient,
        /// Collection id.
        collection: String,
    },
    /// Items from a snapshot file or memory: no STAC API needed.
    Items(Vec<stac::Item>),
}

impl Catalog {
    /// A live STAC API at landing page `url`, searching `collection`.
    ///
    /// ```
    /// let cat = tilestack::Catalog::stac("http://127.0.0.1:8090", "sentinel-2-l2a").unwrap();
    /// assert!(matches!(cat, tilestack::Catalog::Stac { .. }));
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::error::Error::Invalid) for a malformed URL
    /// (the URL parser's error as its source);
    /// [`Error::Internal`](crate::error::Error::Internal) when the HTTP
    /// client cannot be built.
    pub fn stac(url: &str, collection: &str) -> Result<Catalog> {
        Ok(Catalog::Stac {
            client: StacClient::new(url)?,
            collection: collection.to_string(),
        })
    }
}
