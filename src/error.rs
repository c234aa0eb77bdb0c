//! The crate's one error type, and the warnings returned beside results.
//!
//! Errors name their culprit (file, URL, item id or field) in their message
//! and keep the error that caused them as their [`source`](std::error::Error::source):
//! print them with the whole chain (`{:#}` through `anyhow`, or
//! [`Error::chain`]) to see both. Decisions are made on fields (an HTTP
//! status, a variant), never on message text.
//!
//! May import: nothing of the crate (stage 0: every other module imports it).

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in tilestack, each variant naming the culprit
/// (file, URL, item id or field) so the message alone says what to fix.
///
/// # Examples
/// ```
/// let e = tilestack::Resolution::new(-10.0).unwrap_err();
/// assert!(matches!(e, tilestack::Error::Invalid { what: "resolution", .. }));
/// assert!(e.to_string().contains("-10"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A recipe or other configuration file is malformed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A folder is not a generated demo world.
    #[error("{path} is not a tilestack world: {message}")]
    NotAWorld {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A value given by the caller is out of range or malformed.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input (e.g. `resolution`, `bbox`, `--centroid`).
        what: &'static str,
        /// Why it is rejected.
        message: String,
    },
    /// A coordinate reference system is not supported or a projection failed.
    #[error("CRS EPSG:{epsg}: {message}")]
    Crs {
        /// The EPSG code.
        epsg: u32,
        /// What failed.
        message: String,
    },
    /// A request for a file or an API failed (after retries, where they
    /// apply): HTTP, a local `file://` read, or an object store.
    #[error("HTTP {url}: {message}")]
    Http {
        /// The URL requested (unsigned: never a token).
        url: String,
        /// The HTTP status of the last response, when there was one.
        status: Option<u16>,
        /// What failed (byte range, status, retries).
        message: String,
        /// The transport, I/O or object-store error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A STAC API answered with something that is not what the spec says.
    #[error("STAC {url}: {message}")]
    Stac {
        /// The URL that answered.
        url: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// A STAC item lacks a field the stack needs, or has a malformed one.
    #[error("item {item}: {message}")]
    Item {
        /// The item id.
        item: String,
        /// The missing or malformed field and why.
        message: String,
    },
    /// A COG is malformed, unsupported or a tile failed to decode.
    #[error("COG {href}: {message}")]
    Cog {
        /// The file's URL.
        href: String,
        /// What is wrong.
        message: String,
        /// The TIFF parser's or decoder's error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A background task (decode, warp, fusion, a file read) died.
    #[error("{what} task failed")]
    Task {
        /// Which task.
        what: &'static str,
        /// Why (a panic or a cancellation).
        #[source]
        source: Cause,
    },
    /// Planning or loading one sample of a dataset failed.
    #[error("sample {index} at {lon},{lat}")]
    Sample {
        /// The sample's index in the dataset.
        index: usize,
        /// Its centroid's longitude, degrees.
        lon: f64,
        /// Its centroid's latitude, degrees.
        lat: f64,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// An error recorded when shards were written (a sample that failed to
    /// load), replayed as it was by the shard loaders.
    #[error("{message}")]
    Recorded {
        /// The error and its causes, as [`Error::chain`] printed them.
        message: String,
    },
    /// The demo world could not be made (feature `demo`).
    #[error("demo world: {message}")]
    Demo {
        /// What failed.
        message: String,
        /// The cause, if any.
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    /// Shorthand for an [`Error::Io`] on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Invalid`].
    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Http`] without a status or cause.
    pub(crate) fn http(url: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Http {
            url: url.into(),
            status: None,
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for an [`Error::Cog`] without a cause.
    pub(crate) fn cog(href: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Cog {
            href: href.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Task`] for a task that panicked or was cancelled.
    pub(crate) fn task(what: &'static str, e: tokio::task::JoinError) -> Self {
        Error::Task {
            what,
            source: Cause::new(e),
        }
    }

    /// The message and every cause after it, `": "`-separated: what
    /// `anyhow`'s `{:#}` prints. Use it where an error becomes text (a
    /// stack's `read_errors`, a log line) so the cause is not lost.
    ///
    /// # Examples
    /// ```
    /// let e = tilestack::TileStack::read_safetensors(std::path::Path::new("/nonexistent/x")).unwrap_err();
    /// assert!(e.chain().starts_with(&e.to_string()));
    /// ```
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(s) = src {
            let text = s.to_string();
            // Some variants already print their cause (`Io`): no repeats.
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            src = s.source();
        }
        out
    }

    /// A copy of an error shared between the readers waiting on one tile:
    /// the same variant, fields and cause (a cause is shared, not copied).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Http {
                url,
                status,
                message,
                source,
            } => Error::Http {
                url: url.clone(),
                status: *status,
                message: message.clone(),
                source: source.clone(),
            },
            Error::Cog {
                href,
                message,
                source,
            } => Error::Cog {
                href: href.clone(),
                message: message.clone(),
                source: source.clone(),
            },
            Error::Task { what, source } => Error::Task {
                what,
                source: source.clone(),
            },
            Error::Invalid { what, message } => Error::Invalid {
                what,
                message: message.clone(),
            },
            other => Error::Cog {
                href: String::new(),
                message: other.chain(),
                source: None,
            },
        }
    }
}

/// The error behind an [`Error`] (from reqwest, async-tiff, object_store,
/// std::io or a task), shared so that one failed tile fetch can fail every
/// reader waiting on it with the same cause. Its `Display` and `source` are
/// the wrapped error's.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }

    /// Wraps an already boxed error.
    pub fn from_boxed(e: Box<dyn std::error::Error + Send + Sync + 'static>) -> Cause {
        Cause(Arc::from(e))
    }

    /// The wrapped error, e.g. to downcast it.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something a result should be read with, returned beside it (never only
/// logged): a search that may be truncated, repeated items, a tile no scene
/// covers. `Display` gives the sentence a user reads; match the variant to
/// count or act on a kind.
///
/// # Examples
/// ```
/// let w = tilestack::Warning::DuplicateItem { id: "S2A_1".into(), page: 2 };
/// assert_eq!(w.to_string(), "duplicate item S2A_1 on page 2");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// A search page (or a snapshot's items) repeated an item already
    /// returned (kept once).
    DuplicateItem {
        /// The item id.
        id: String,
        /// The page (1-based) it was repeated on; 0 for items given (a snapshot).
        page: usize,
    },
    /// A server returned an item of a collection the search did not ask
    /// for (skipped).
    OtherCollection {
        /// The item id.
        id: String,
        /// Its collection.
        collection: String,
    },
    /// A search stopped at its item cap.
    MaxItems {
        /// The cap.
        max_items: usize,
    },
    /// A full page came without a `next` link: results may be truncated.
    MaybeTruncated {
        /// The page (1-based).
        page: usize,
        /// Items on it.
        items: usize,
    },
    /// Paging stopped because the server sent back to a page already read
    /// (a repeated `next` link) or a page added no new item.
    PagingLoop {
        /// The page (1-based) where it stopped.
        page: usize,
        /// Why: `"repeated next link"` or `"page added no new item"`.
        reason: String,
    },
    /// No scene intersects the tile in the time range: the stack is all NaN.
    NoScenes {
        /// `[lon, lat]` of the tile centre.
        centroid: [f64; 2],
        /// First day.
        start: chrono::NaiveDate,
        /// Last day.
        end: chrono::NaiveDate,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::DuplicateItem { id, page: 0 } => {
                write!(f, "duplicate item {id} in the items given (kept once)")
            }
            Warning::DuplicateItem { id, page } => write!(f, "duplicate item {id} on page {page}"),
            Warning::OtherCollection { id, collection } => write!(
                f,
                "item {id} is of collection {collection}, not one searched: skipped"
            ),
            Warning::MaxItems { max_items } => write!(f, "stopped at max_items = {max_items}"),
            Warning::MaybeTruncated { page, items } => write!(
                f,
                "page {page} returned a full page of {items} items but no next link: results may be truncated"
            ),
            Warning::PagingLoop { page, reason } => {
                write!(f, "paging stopped at page {page}: {reason}")
            }
            Warning::NoScenes {
                centroid,
                start,
                end,
            } => write!(
                f,
                "no scene intersects the tile around {centroid:?} in {start}/{end}: the stack is all NaN"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_keeps_the_cause_and_duplicate_shares_it() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::Http {
            url: "http://127.0.0.1:1/a.tif".into(),
            status: None,
            message: "bytes 0..16: transport error".into(),
            source: Some(Cause::new(io)),
        };
        assert_eq!(
            e.chain(),
            "HTTP http://127.0.0.1:1/a.tif: bytes 0..16: transport error: reset by peer"
        );
        let d = e.duplicate();
        assert!(matches!(&d, Error::Http { status: None, .. }));
        assert_eq!(d.chain(), e.chain());
        // Io prints its cause already: not twice
        let e = Error::io("/x", std::io::Error::other("gone"));
        assert_eq!(e.chain(), "/x: gone");
    }
}
