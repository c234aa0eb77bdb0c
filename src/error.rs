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
/// Every variant that wraps another error keeps it as its
/// [`source`](std::error::Error::source) (a [`Cause`]), never formatted into
/// its message: `Display` prints this error's own sentence, and
/// [`Error::chain`] (or `{:#}` through `anyhow`) prints it with every cause.
///
/// [`Error::Invalid`] is bad input from the caller (a value, a config, a
/// request); [`Error::Internal`] is a failure inside tilestack that no input
/// explains (a runtime that could not start or has shut down, closed load
/// permits), worth a bug report.
///
/// # Examples
/// ```
/// let e = tilestack::Resolution::new(-10.0).unwrap_err();
/// assert!(matches!(e, tilestack::Error::Invalid { what: "resolution", .. }));
/// assert!(e.to_string().contains("-10"));
///
/// // A cause is kept as the source, and `chain` prints it after the message.
/// let e = tilestack::DatasetConfig::from_toml_str("[sampler", "bad.toml".as_ref()).unwrap_err();
/// assert!(matches!(e, tilestack::Error::Config { .. }));
/// assert!(std::error::Error::source(&e).is_some());
/// assert!(e.chain().len() > e.to_string().len());
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
        /// The parser's error (TOML, JSON, GeoJSON, Parquet), if any.
        #[source]
        source: Option<Cause>,
    },
    /// A folder is not a generated demo world.
    #[error("{path} is not a tilestack world: {message}")]
    NotAWorld {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        message: String,
        /// The I/O or JSON error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A value given by the caller (an argument, a config value, a request,
    /// a file the caller points at) is out of range or malformed.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input (e.g. `resolution`, `bbox`, `--centroid`).
        what: &'static str,
        /// Why it is rejected.
        message: String,
        /// The parser's error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A failure inside tilestack that no input explains: a runtime that
    /// could not start or has shut down, closed load permits, an HTTP client
    /// that could not be built, an array not laid out as it was built. A
    /// bug, or the machine (threads, memory, TLS), not the caller's input.
    #[error("internal error in {what}: {message}")]
    Internal {
        /// Which part of tilestack (e.g. `loader`, `shard header`).
        what: &'static str,
        /// What failed.
        message: String,
        /// The error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A coordinate reference system is not supported or a projection failed.
    #[error("CRS EPSG:{epsg}: {message}")]
    Crs {
        /// The EPSG code.
        epsg: u32,
        /// What failed.
        message: String,
        /// The projection library's error, if any.
        #[source]
        source: Option<Cause>,
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
        /// The JSON or server error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A STAC item lacks a field the stack needs, or has a malformed one.
    #[error("item {item}: {message}")]
    Item {
        /// The item id.
        item: String,
        /// The missing or malformed field and why.
        message: String,
        /// The parser's error behind it (JSON, GeoJSON, a date), if any.
        #[source]
        source: Option<Cause>,
    },
    /// A COG is malformed, unsupported or a tile failed to decode.
    #[error("COG {href}: {message}")]
    Cog {
        /// The file's URL.
        href: String,
        /// What is wrong.
        message: String,
        /// The TIFF parser's or decoder's error, if any (a
        /// [`DecodeError`](crate::cog::DecodeError) for a tile that
        /// did not decode).
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

    /// Shorthand for an [`Error::Invalid`] without a cause.
    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Invalid`] whose cause (a parser's error) is its source.
    pub(crate) fn invalid_because(
        what: &'static str,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::invalid(what, message).because(cause)
    }

    /// Shorthand for an [`Error::Internal`] without a cause.
    pub(crate) fn internal(what: &'static str, message: impl Into<String>) -> Self {
        Error::Internal {
            what,
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Internal`] whose cause is its source.
    pub(crate) fn internal_because(
        what: &'static str,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::internal(what, message).because(cause)
    }

    /// Shorthand for an [`Error::Config`] on `path` without a cause.
    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Config`] on `path` whose cause (the parser's error) is its
    /// source.
    pub(crate) fn config_because(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::config(path, message).because(cause)
    }

    /// Shorthand for an [`Error::Crs`] without a cause.
    pub(crate) fn crs(epsg: u32, message: impl Into<String>) -> Self {
        Error::Crs {
            epsg,
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Crs`] whose cause (the projection library's error) is its
    /// source.
    pub(crate) fn crs_because(
        epsg: u32,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::crs(epsg, message).because(cause)
    }

    /// Shorthand for an [`Error::Stac`] without a cause.
    pub(crate) fn stac(url: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Stac {
            url: url.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Stac`] whose cause is its source.
    pub(crate) fn stac_because(
        url: impl Into<String>,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::stac(url, message).because(cause)
    }

    /// Shorthand for an [`Error::Item`] without a cause.
    pub(crate) fn item(item: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Item {
            item: item.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Item`] whose cause (the parser's error) is its source.
    pub(crate) fn item_because(
        item: impl Into<String>,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::item(item, message).because(cause)
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

    /// An [`Error::Cog`] whose cause (the TIFF parser's or decoder's error)
    /// is its source.
    pub(crate) fn cog_because(
        href: impl Into<String>,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::cog(href, message).because(cause)
    }

    /// This error with `cause` as its source (variants without a cause
    /// field are returned as they are): what every `*_because` does.
    fn because(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        match &mut self {
            Error::Invalid { source, .. }
            | Error::Internal { source, .. }
            | Error::Config { source, .. }
            | Error::Crs { source, .. }
            | Error::Stac { source, .. }
            | Error::Item { source, .. }
            | Error::Cog { source, .. } => *source = Some(Cause::new(cause)),
            _ => {}
        }
        self
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
            // a parser's message may end in a newline (TOML's do)
            let text = text.trim_end();
            // Some variants already print their cause (`Io`): no repeats.
            if !out.ends_with(text) {
                out.push_str(": ");
                out.push_str(text);
            }
            src = s.source();
        }
        out
    }

    /// A copy of an error shared between the readers waiting on one tile:
    /// the same variant, fields and cause (a cause is shared, not copied).
    /// An [`Error::Io`]'s cause cannot be shared: the copy keeps its kind and
    /// its text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Config {
                path,
                message,
                source,
            } => Error::Config {
                path: path.clone(),
                message: message.clone(),
                source: source.clone(),
            },
            Error::NotAWorld {
                path,
                message,
                source,
            } => Error::NotAWorld {
                path: path.clone(),
                message: message.clone(),
                source: source.clone(),
            },
            Error::Invalid {
                what,
                message,
                source,
            } => Error::Invalid {
                what,
                message: message.clone(),
                source: source.clone(),
            },
            Error::Internal {
                what,
                message,
                source,
            } => Error::Internal {
                what,
                message: message.clone(),
                source: source.clone(),
            },
            Error::Crs {
                epsg,
                message,
                source,
            } => Error::Crs {
                epsg: *epsg,
                message: message.clone(),
                source: source.clone(),
            },
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
            Error::Stac {
                url,
                message,
                source,
            } => Error::Stac {
                url: url.clone(),
                message: message.clone(),
                source: source.clone(),
            },
            Error::Item {
                item,
                message,
                source,
            } => Error::Item {
                item: item.clone(),
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
            Error::Sample {
                index,
                lon,
                lat,
                source,
            } => Error::Sample {
                index: *index,
                lon: *lon,
                lat: *lat,
                source: Box::new(source.duplicate()),
            },
            Error::Recorded { message } => Error::Recorded {
                message: message.clone(),
            },
            Error::Demo { message, source } => Error::Demo {
                message: message.clone(),
                source: source.clone(),
            },
        }
    }
}

/// A message and, when a foreign error is behind it, that error: what a
/// pure helper (a GeoJSON or CSV parser, a scene field check) returns before
/// its caller names the file, item or key and turns it into an [`Error`].
/// Prefixing it with [`Problem::context`] keeps the cause.
#[derive(Debug)]
pub(crate) struct Problem {
    /// What is wrong, without the cause's text.
    pub(crate) message: String,
    /// The error behind it, if any.
    pub(crate) source: Option<Cause>,
}

impl Problem {
    /// A problem `message` whose cause is `cause`.
    pub(crate) fn because(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Problem {
        Problem {
            message: message.into(),
            source: Some(Cause::new(cause)),
        }
    }

    /// `"{prefix}: {message}"`, the cause kept.
    pub(crate) fn context(self, prefix: impl std::fmt::Display) -> Problem {
        Problem {
            message: format!("{prefix}: {}", self.message),
            source: self.source,
        }
    }

    /// An [`Error::Config`] on `path` with this message and cause.
    pub(crate) fn config(self, path: impl Into<PathBuf>) -> Error {
        Error::Config {
            path: path.into(),
            message: self.message,
            source: self.source,
        }
    }

    /// An [`Error::Item`] on `item` with this message and cause.
    pub(crate) fn item(self, item: impl Into<String>) -> Error {
        Error::Item {
            item: item.into(),
            message: self.message,
            source: self.source,
        }
    }

    /// An [`Error::Invalid`] of `what` with this message and cause.
    pub(crate) fn invalid(self, what: &'static str) -> Error {
        Error::Invalid {
            what,
            message: self.message,
            source: self.source,
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Problem {
        Problem {
            message,
            source: None,
        }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Problem {
        Problem::from(message.to_string())
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
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

    /// One error of every variant, each built with a cause where it has one.
    fn every_variant() -> Vec<Error> {
        let cause = || std::io::Error::other("the cause");
        vec![
            Error::io("/x", cause()),
            Error::config_because("/c.toml", "not a dataset config", cause()),
            Error::NotAWorld {
                path: "/w".into(),
                message: "world.json".into(),
                source: Some(Cause::new(cause())),
            },
            Error::invalid_because("resolution", "-10", cause()),
            Error::internal_because("loader", "its load permits are closed", cause()),
            Error::crs_because(32610, "projecting (0, 0)", cause()),
            Error::Http {
                url: "http://h/a.tif".into(),
                status: Some(503),
                message: "bytes 0..16".into(),
                source: Some(Cause::new(cause())),
            },
            Error::stac_because("http://h/search", "response is not JSON", cause()),
            Error::item_because("S2A_1", "geometry", cause()),
            Error::cog_because("http://h/a.tif", "tile (0, 0) of IFD 0", cause()),
            Error::Task {
                what: "warp",
                source: Cause::new(cause()),
            },
            Error::Sample {
                index: 3,
                lon: 1.0,
                lat: 2.0,
                source: Box::new(Error::io("/y", cause())),
            },
            Error::Demo {
                message: "writing a COG".into(),
                source: Some(Cause::new(cause())),
            },
        ]
    }

    #[test]
    fn every_wrapping_variant_keeps_its_cause_as_source() {
        let all = every_variant();
        // every variant but Recorded (which replays text) wraps a cause
        assert_eq!(all.len(), 13);
        for e in &all {
            let source = std::error::Error::source(e);
            assert!(source.is_some(), "{e:?} has no source");
            // the cause is printed once, by chain, after the message
            let chain = e.chain();
            assert!(chain.starts_with(&e.to_string()), "{chain}");
            assert_eq!(chain.matches("the cause").count(), 1, "{chain}");
            // a duplicate is the same variant with the same chain
            let d = e.duplicate();
            assert_eq!(
                std::mem::discriminant(&d),
                std::mem::discriminant(e),
                "{e:?}"
            );
            assert_eq!(d.chain(), chain);
        }
        // built without a cause, the optional ones have none
        for e in [
            Error::config("/c.toml", "x"),
            Error::invalid("resolution", "x"),
            Error::internal("loader", "x"),
            Error::crs(32610, "x"),
            Error::stac("http://h", "x"),
            Error::item("S2A_1", "x"),
            Error::cog("http://h/a.tif", "x"),
            Error::http("http://h/a.tif", "x"),
        ] {
            assert!(std::error::Error::source(&e).is_none(), "{e:?}");
            assert_eq!(e.chain(), e.to_string());
        }
        let r = Error::Recorded {
            message: "sample 3 at 1,2: HTTP h: 503".into(),
        };
        assert_eq!(r.duplicate().chain(), r.chain());
    }

    #[test]
    fn a_cause_is_shared_not_copied_by_duplicate() {
        let e = Error::invalid_because("EPSG code", "\"x\"", "x".parse::<u32>().unwrap_err());
        let d = e.duplicate();
        let (
            Error::Invalid {
                source: Some(a), ..
            },
            Error::Invalid {
                source: Some(b), ..
            },
        ) = (&e, &d)
        else {
            panic!("{e:?} / {d:?}");
        };
        assert!(std::ptr::addr_eq(a.get(), b.get()));
        assert!(a.get().is::<std::num::ParseIntError>());
    }

    #[test]
    fn problem_context_keeps_the_cause() {
        let p = Problem::because("not JSON", serde_json::from_str::<u8>("{").unwrap_err())
            .context("feature 2");
        assert_eq!(p.message, "feature 2: not JSON");
        let e = p.config("/pts.geojson");
        assert!(matches!(&e, Error::Config { message, .. } if message == "feature 2: not JSON"));
        let source = std::error::Error::source(&e).expect("the JSON error");
        assert!(
            source
                .downcast_ref::<Cause>()
                .is_some_and(|c| c.get().is::<serde_json::Error>())
        );
        // a plain message has no cause
        let e = Problem::from("no geometry")
            .context("feature 0")
            .item("S2A_1");
        assert_eq!(e.to_string(), "item S2A_1: feature 0: no geometry");
        assert!(std::error::Error::source(&e).is_none());
    }

    /// The source of `e` as `T`, through the [`Cause`] that holds it.
    fn cause_of<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
        std::error::Error::source(e)?
            .downcast_ref::<Cause>()?
            .get()
            .downcast_ref::<T>()
    }

    // One per converted area: the cause survives as the source.

    #[test]
    fn a_config_with_broken_toml_has_the_toml_error_as_source() {
        let e = crate::dataset::config::DatasetConfig::from_toml_str(
            "[sampler\nkind = 1",
            std::path::Path::new("bad.toml"),
        )
        .unwrap_err();
        assert!(matches!(&e, Error::Config { path, .. } if path.ends_with("bad.toml")));
        let toml = cause_of::<toml::de::Error>(&e).expect("the TOML error");
        assert!(
            e.chain().contains(toml.to_string().trim_end()),
            "{}",
            e.chain()
        );
        // a bad value inside: the key's Config error wraps the value's error
        let e = crate::dataset::config::DatasetConfig::from_toml_str(
            "[catalog]\nsnapshot = \"s.json\"\n[sampler]\nkind = \"grid\"\n\
             bbox = [0.0, 0.0, 1.0, 1.0]\nstride_m = 1000.0\n[stack]\nbands = [\"B04\"]\n\
             [time]\nrange = \"2019-08-30/2019-08-01\"\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap_err();
        let inner = cause_of::<Error>(&e).expect("the time range's error");
        assert!(
            matches!(
                inner,
                Error::Invalid {
                    what: "time.range",
                    ..
                }
            ),
            "{inner:?}"
        );
        assert!(e.chain().contains("2019-08-30/2019-08-01"), "{}", e.chain());
    }

    #[test]
    fn a_snapshot_that_is_not_json_has_the_json_error_as_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("items.json");
        std::fs::write(&p, "{").expect("write");
        let e = crate::stac::snapshot::load_snapshot(&p).unwrap_err();
        assert!(matches!(&e, Error::Config { message, .. } if message == "not JSON"));
        assert!(cause_of::<serde_json::Error>(&e).is_some(), "{e:?}");
        // an item that does not parse: the Item error keeps serde's
        std::fs::write(
            &p,
            r#"{"type": "FeatureCollection", "features": [{"id": "x", "type": "Feature", "links": 5}]}"#,
        )
        .expect("write");
        let e = crate::stac::snapshot::load_snapshot(&p).unwrap_err();
        assert!(
            matches!(&e, Error::Item { item, .. } if item == "x"),
            "{e:?}"
        );
        assert!(cause_of::<serde_json::Error>(&e).is_some(), "{e:?}");
    }

    #[test]
    fn a_malformed_item_field_keeps_the_parser_error() {
        let item: stac::Item = serde_json::from_value(serde_json::json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "s1", "links": [],
            "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1],[0,0]]]},
            "bbox": [0,0,1,1],
            "properties": {"datetime": "2019-08-01T18:59:21Z", "proj:code": "EPSG:x"},
            "assets": {"B04": {"href": "http://h/B04.tif",
                "proj:transform": [10, 0, 500000, 0, -10, 100000], "proj:shape": [100, 100]}}
        }))
        .expect("an item");
        let band = crate::units::BandName::new("B04").expect("band");
        let e = crate::stac::scene::Scene::from_item(&item, &[band]).unwrap_err();
        assert!(
            matches!(&e, Error::Item { item, message, .. }
                if item == "s1" && message == "asset B04: proj:code"),
            "{e:?}"
        );
        let inner = cause_of::<Error>(&e).expect("the EPSG code's error");
        assert!(
            matches!(
                inner,
                Error::Invalid {
                    what: "EPSG code",
                    ..
                }
            ),
            "{inner:?}"
        );
        assert!(
            cause_of::<std::num::ParseIntError>(inner).is_some(),
            "{inner:?}"
        );
    }

    #[test]
    fn a_bad_time_range_keeps_the_date_parser_error() {
        let e = "2019-08-01/yesterday"
            .parse::<crate::units::TimeRange>()
            .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Invalid {
                    what: "time range",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(cause_of::<chrono::ParseError>(&e).is_some(), "{e:?}");
        assert!(e.to_string().contains("yesterday"), "{e}");
    }

    #[test]
    fn a_safetensors_file_that_is_not_one_keeps_the_reader_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, b"not a stack").expect("write");
        let e = crate::stack::TileStack::read_safetensors(&p).unwrap_err();
        assert!(
            matches!(&e, Error::Config { message, .. } if message == "not a safetensors file"),
            "{e:?}"
        );
        assert!(
            cause_of::<safetensors::SafeTensorError>(&e).is_some(),
            "{e:?}"
        );
    }

    #[test]
    fn a_shard_index_that_is_not_json_keeps_the_json_error() {
        let e = crate::shard::index::ShardIndex::from_json(b"{", "index.json").unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Invalid {
                    what: "shard index",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(cause_of::<serde_json::Error>(&e).is_some(), "{e:?}");
        assert!(e.to_string().contains("index.json"), "{e}");
    }
}
