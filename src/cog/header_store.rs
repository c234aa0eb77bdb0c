//! COG headers kept on disk across processes, so that a new process — the
//! next epoch's data loader, the next notebook session — reads pixels with
//! **zero** header requests.
//!
//! One file per href in a folder: the byte ranges the header parse read (as
//! asked, with what came back) and the file's version (size, `ETag`) seen
//! then. A reader opening the href again replays those bytes through the
//! same parser instead of fetching them. The entry is trusted until a tile
//! response shows another size or `ETag` for the file: then the read fails
//! with an error naming the href, the entry is dropped, and the next read
//! fetches the header again (see [`crate::cog::CogReader::with_header_store`]).
//!
//! The format is private to this crate and versioned by its first line; an
//! entry that does not parse is treated as absent (and removed), never as a
//! header.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fetch::version::ObjectVersion;

const MAGIC: &[u8] = b"tilestack-cog-header/1\n";
/// An entry larger than this is not a header (corrupt or foreign file).
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024;

/// A folder of persisted COG headers.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::{HeaderStore, TileCache};
/// use tilestack::fetch::RetryConfig;
/// use tilestack::{CogReader, HttpRangeClient};
/// let store = HeaderStore::open(HeaderStore::default_dir())?;
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30))
///     .with_header_store(store);
/// // the first process fetches the header and keeps it; later ones read it from disk
/// let h = reader.header("http://127.0.0.1:8080/data/a/B04.tif").await?;
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HeaderStore {
    dir: PathBuf,
}

/// One persisted header: the reads of the parse and the file's version.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredHeader {
    pub(crate) version: ObjectVersion,
    pub(crate) reads: Vec<(Range<u64>, Bytes)>,
}

impl StoredHeader {
    /// The bytes read for exactly `range` during the original parse.
    pub(crate) fn replay(&self, range: &Range<u64>) -> Option<Bytes> {
        self.reads
            .iter()
            .find(|(r, _)| r == range)
            .map(|(_, b)| b.clone())
    }
}

impl HeaderStore {
    /// The store in `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::Io`] when the folder cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<HeaderStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(HeaderStore { dir })
    }

    /// `headers/` under the crate's cache folder (`$TILESTACK_CACHE`, else
    /// `$XDG_CACHE_HOME/tilestack`, else `~/.cache/tilestack`).
    pub fn default_dir() -> PathBuf {
        cache_root().join("headers")
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "hdr"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn path(&self, href: &str) -> PathBuf {
        // The entry repeats the href, so a collision reads as a miss.
        self.dir
            .join(format!("{:016x}.hdr", fnv1a(href.as_bytes())))
    }

    /// The entry of `href`, if there is a readable one.
    pub(crate) fn load(&self, href: &str) -> Option<StoredHeader> {
        let path = self.path(href);
        let len = std::fs::metadata(&path).ok()?.len();
        if len > MAX_ENTRY_BYTES {
            self.remove(href);
            return None;
        }
        let buf = std::fs::read(&path).ok()?;
        match decode(&buf, href) {
            Some(h) => Some(h),
            None => {
                // corrupt, truncated, another format or another href
                if decode_href(&buf).is_none_or(|h| h == href) {
                    self.remove(href);
                }
                None
            }
        }
    }

    /// Keeps `header` for `href` (written to a temporary file, then renamed:
    /// readers in other processes never see half an entry).
    pub(crate) fn save(&self, href: &str, header: &StoredHeader) -> Result<()> {
        let path = self.path(href);
        // Unique per process and call: concurrent saves never share a file.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            f.write_all(&encode(href, header))?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })
    }

    /// Drops the entry of `href` (if any).
    pub(crate) fn remove(&self, href: &str) {
        let _ = std::fs::remove_file(self.path(href));
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode(href: &str, h: &StoredHeader) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, href.as_bytes());
    out.extend_from_slice(&h.version.size.unwrap_or(u64::MAX).to_le_bytes());
    put_bytes(&mut out, h.version.etag.as_deref().unwrap_or("").as_bytes());
    out.extend_from_slice(&(h.reads.len() as u64).to_le_bytes());
    for (r, b) in &h.reads {
        out.extend_from_slice(&r.start.to_le_bytes());
        out.extend_from_slice(&r.end.to_le_bytes());
        put_bytes(&mut out, b);
    }
    out
}

/// A cursor over an entry; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
}

fn decode_href(buf: &[u8]) -> Option<&str> {
    let mut c = Cursor(buf.strip_prefix(MAGIC)?);
    std::str::from_utf8(c.bytes()?).ok()
}

fn decode(buf: &[u8], href: &str) -> Option<StoredHeader> {
    let mut c = Cursor(buf.strip_prefix(MAGIC)?);
    if c.bytes()? != href.as_bytes() {
        return None;
    }
    let size = c.u64()?;
    let etag = std::str::from_utf8(c.bytes()?).ok()?;
    let n = c.u64()?;
    let mut reads = Vec::new();
    for _ in 0..n {
        let (start, end) = (c.u64()?, c.u64()?);
        let b = c.bytes()?;
        if end < start || b.len() as u64 > end - start {
            return None;
        }
        reads.push((start..end, Bytes::copy_from_slice(b)));
    }
    if !c.0.is_empty() {
        return None;
    }
    Some(StoredHeader {
        version: ObjectVersion {
            size: (size != u64::MAX).then_some(size),
            etag: (!etag.is_empty()).then(|| etag.to_string()),
        },
        reads,
    })
}

/// FNV-1a of `bytes`: the cache folder's file keys. Stable across Rust
/// versions and processes (std's hasher is not); not for security.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The crate's cache folder (COG headers, generated demo worlds):
/// `$TILESTACK_CACHE`, else `$XDG_CACHE_HOME/tilestack`, else
/// `~/.cache/tilestack`, else a folder in the system's temp folder.
///
/// # Examples
/// ```
/// assert!(tilestack::cog::cache_root().is_absolute() || std::env::var_os("TILESTACK_CACHE").is_some());
/// ```
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("TILESTACK_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("tilestack");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("tilestack");
    }
    std::env::temp_dir().join("tilestack-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_standard_one() {
        // the published FNV-1a 64-bit test vectors: keys stay valid across versions
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn entry() -> StoredHeader {
        StoredHeader {
            version: ObjectVersion {
                size: Some(1234),
                etag: Some("\"abc\"".into()),
            },
            reads: vec![
                (0..8192, Bytes::from(vec![7u8; 1234])),
                (8192..16384, Bytes::new()),
            ],
        }
    }

    #[test]
    fn round_trip_and_replay() {
        let d = tempfile::tempdir().unwrap();
        let s = HeaderStore::open(d.path().join("h")).unwrap();
        assert!(s.load("http://x/a.tif").is_none());
        s.save("http://x/a.tif", &entry()).unwrap();
        assert_eq!(s.len(), 1);
        let back = s.load("http://x/a.tif").unwrap();
        assert_eq!(back.version, entry().version);
        assert_eq!(back.replay(&(0..8192)).unwrap().len(), 1234);
        assert!(back.replay(&(0..100)).is_none());
        assert!(s.load("http://x/b.tif").is_none());
        s.remove("http://x/a.tif");
        assert!(s.is_empty());
    }

    #[test]
    fn corrupt_entries_are_misses_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let s = HeaderStore::open(d.path()).unwrap();
        let href = "http://x/a.tif";
        s.save(href, &entry()).unwrap();
        let path = s.path(href);
        let good = std::fs::read(&path).unwrap();
        // every truncation, and a flipped length, is a miss, never a panic
        for cut in [0, 5, MAGIC.len(), MAGIC.len() + 3, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(s.load(href).is_none(), "cut at {cut}");
        }
        let mut bad = good.clone();
        let at = MAGIC.len() + 8 + href.len() + 8 + 8 + 5 + 8 + 16;
        bad[at + 7] = 0xff; // a huge read length
        std::fs::write(&path, &bad).unwrap();
        assert!(s.load(href).is_none());
        assert!(!path.exists(), "a corrupt entry of this href is removed");
    }
}
