//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in tilestack, each variant naming the culprit
/// (file, URL, item id or field) so the message alone says what to fix.
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
    /// An HTTP request failed (after retries, where they apply).
    #[error("HTTP {url}: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// Status or transport error.
        message: String,
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
    /// Writing a COG failed.
    #[error(transparent)]
    CogWrite(#[from] crate::world::cog_writer::CogWriteError),
    /// A COG is malformed, unsupported or a tile failed to decode.
    #[error("COG {href}: {message}")]
    Cog {
        /// The file's URL.
        href: String,
        /// What is wrong.
        message: String,
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
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
