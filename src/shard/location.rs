//! Where shards live: a local folder, or a URL prefix (`s3://`, `gs://`,
//! `az://` through `object_store` with feature `cloud`, read and written;
//! `http(s)://`, read only). Writes are atomic: a local file is written
//! under a temporary name, synced and renamed; an object is uploaded whole.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::fetch::retry::RetryConfig;

/// Index and `dataset.json` files are refused above this size.
pub(crate) const MAX_INDEX_BYTES: u64 = 1 << 30;

/// Local files kept open at once (shards, index tables): a set of
/// thousands of shards reads them all without holding a handle per shard
/// (a process's limit is often 1024); the least recently read is closed.
const OPEN_FILES: NonZeroUsize = NonZeroUsize::new(64).unwrap();

#[derive(Debug)]
pub(crate) enum Location {
    Local {
        dir: PathBuf,
        /// Open files, by name: the [`OPEN_FILES`] most recently read.
        files: Mutex<lru::LruCache<String, Arc<std::fs::File>>>,
    },
    Remote {
        /// The prefix, without a trailing `/`.
        base: String,
        client: HttpRangeClient,
    },
}

impl Location {
    /// `s` as a location: a URL with a scheme other than `file://` is
    /// remote (read through `client`, or a default client), anything else
    /// a local folder.
    pub(crate) fn parse(s: &str, client: Option<HttpRangeClient>) -> Result<Location> {
        if let Some(p) = s.strip_prefix("file://") {
            return Ok(Location::local(Path::new(p)));
        }
        if s.contains("://") {
            let client = match client {
                Some(c) => c,
                None => HttpRangeClient::new(RetryConfig::default())?,
            };
            return Ok(Location::Remote {
                base: s.trim_end_matches('/').to_string(),
                client,
            });
        }
        Ok(Location::local(Path::new(s)))
    }

    /// Another handle on the same place (no open files shared).
    pub(crate) fn clone_for_write(&self) -> Location {
        match self {
            Location::Local { dir, .. } => Location::local(dir),
            Location::Remote { base, client } => Location::Remote {
                base: base.clone(),
                client: client.clone(),
            },
        }
    }

    fn local(dir: &Path) -> Location {
        Location::Local {
            dir: dir.to_path_buf(),
            files: Mutex::new(lru::LruCache::new(OPEN_FILES)),
        }
    }

    /// The file's path or URL, for messages.
    pub(crate) fn name(&self, file: &str) -> String {
        match self {
            Location::Local { dir, .. } => dir.join(file).display().to_string(),
            Location::Remote { base, .. } => format!("{base}/{file}"),
        }
    }

    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Location::Local { .. })
    }

    /// The whole file, or `None` when it does not exist.
    pub(crate) async fn read_all(&self, file: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Location::Local { dir, .. } => {
                let p = dir.join(file);
                match tokio::fs::metadata(&p).await {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io(&p, e)),
                    Ok(m) if m.len() > MAX_INDEX_BYTES => {
                        return Err(Error::invalid(
                            "shard index",
                            format!(
                                "{}: {} bytes (more than {MAX_INDEX_BYTES})",
                                p.display(),
                                m.len()
                            ),
                        ));
                    }
                    Ok(_) => {}
                }
                tokio::fs::read(&p)
                    .await
                    .map(Some)
                    .map_err(|e| Error::io(&p, e))
            }
            Location::Remote { .. } => {
                #[cfg(feature = "cloud")]
                if let Some((store, key)) = self.object(file)? {
                    use object_store::ObjectStoreExt;
                    return match store.get(&key).await {
                        Ok(r) => {
                            if r.meta.size > MAX_INDEX_BYTES {
                                return Err(Error::invalid(
                                    "shard index",
                                    format!(
                                        "{}: {} bytes (more than {MAX_INDEX_BYTES})",
                                        self.name(file),
                                        r.meta.size
                                    ),
                                ));
                            }
                            let b = r.bytes().await.map_err(|e| self.store_error(file, e))?;
                            Ok(Some(b.to_vec()))
                        }
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(self.store_error(file, e)),
                    };
                }
                let Location::Remote { client, .. } = self else {
                    return Ok(None);
                };
                let url = self.name(file);
                match client.get_range_to_eof(&url, 0..MAX_INDEX_BYTES + 1).await {
                    Ok(b) if b.len() as u64 > MAX_INDEX_BYTES => Err(Error::invalid(
                        "shard index",
                        format!("{url}: more than {MAX_INDEX_BYTES} bytes"),
                    )),
                    Ok(b) => Ok(Some(b.to_vec())),
                    Err(Error::Http {
                        status: Some(404), ..
                    }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The file's size, or `None` when it does not exist.
    pub(crate) async fn size(&self, file: &str) -> Result<Option<u64>> {
        match self {
            Location::Local { dir, .. } => {
                let p = dir.join(file);
                match tokio::fs::metadata(&p).await {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&p, e)),
                }
            }
            Location::Remote { .. } => {
                #[cfg(feature = "cloud")]
                if let Some((store, key)) = self.object(file)? {
                    use object_store::ObjectStoreExt;
                    return match store.head(&key).await {
                        Ok(m) => Ok(Some(m.size)),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(self.store_error(file, e)),
                    };
                }
                Err(self.read_only(file))
            }
        }
    }

    /// Bytes `[offset, offset + out.len())` of the file into `out`.
    pub(crate) async fn read_into(&self, file: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        match self {
            Location::Local { .. } => {
                let f = self.open(file)?;
                let name = self.name(file);
                // A read of a page-cached range is a memcpy: done here, on
                // the loader's worker, rather than through a thread hop.
                read_at(&f, offset, out).map_err(|e| {
                    Error::invalid_because(
                        "shard",
                        format!("{name}: bytes {offset}..{}", offset + out.len() as u64),
                        e,
                    )
                })
            }
            Location::Remote { client, .. } => {
                let url = self.name(file);
                let b = client
                    .get_range(&url, offset..offset + out.len() as u64)
                    .await?;
                out.copy_from_slice(&b);
                Ok(())
            }
        }
    }

    fn open(&self, file: &str) -> Result<Arc<std::fs::File>> {
        let Location::Local { dir, files } = self else {
            return Err(Error::internal("shard", "not a local folder"));
        };
        let mut files = files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.get(file) {
            return Ok(f.clone());
        }
        let p = dir.join(file);
        let f = Arc::new(std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?);
        files.put(file.to_string(), f.clone());
        Ok(f)
    }

    /// Closes `file` if it is open: it is being replaced, and a handle
    /// kept would read the file it replaces.
    pub(crate) fn forget(&self, file: &str) {
        if let Location::Local { files, .. } = self {
            files.lock().unwrap_or_else(|e| e.into_inner()).pop(file);
        }
    }

    /// Writes `chunks` as the file, atomically (see the module docs).
    pub(crate) async fn put(&self, file: &str, chunks: Vec<Bytes>) -> Result<()> {
        match self {
            Location::Local { dir, .. } => {
                let (d, f) = (dir.clone(), file.to_string());
                let out = tokio::task::spawn_blocking(move || put_local(&d, &f, &chunks))
                    .await
                    .map_err(|e| Error::task("shard write", e))?;
                self.forget(file);
                out
            }
            Location::Remote { .. } => {
                #[cfg(feature = "cloud")]
                if let Some((store, key)) = self.object(file)? {
                    use object_store::ObjectStoreExt;
                    let payload: object_store::PutPayload = chunks.into_iter().collect();
                    return store
                        .put(&key, payload)
                        .await
                        .map(|_| ())
                        .map_err(|e| self.store_error(file, e));
                }
                let _ = chunks;
                Err(self.read_only(file))
            }
        }
    }

    /// A writer of `file` in pieces, for files too large to hold (an index
    /// table): a local file is written under a temporary name and renamed
    /// by [`FileWriter::finish`], as [`Location::put`] does; an object is
    /// uploaded in parts once it passes [`UPLOAD_PART`] bytes (a multipart
    /// upload, at most [`UPLOADS_AT_ONCE`] parts in flight), whole when
    /// smaller. Either way it holds a bounded buffer, never the file.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when its temporary cannot be created;
    /// an `http(s)://` location (read only).
    pub(crate) fn writer(&self, file: &str) -> Result<FileWriter> {
        self.forget(file);
        match self {
            Location::Local { dir, .. } => {
                let path = dir.join(file);
                // The process id and a random number: two parts merging at
                // once (in containers, both may be pid 1) never share one.
                let tmp = dir.join(format!(
                    ".{file}.tmp.{}.{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&path, e))?;
                Ok(FileWriter::Local {
                    out: std::io::BufWriter::with_capacity(1 << 20, f),
                    tmp,
                    path,
                    bytes: 0,
                })
            }
            Location::Remote { .. } => {
                #[cfg(feature = "cloud")]
                if self.object(file)?.is_some() {
                    return Ok(FileWriter::Remote {
                        loc: self.clone_for_write(),
                        file: file.to_string(),
                        pending: Vec::new(),
                        upload: None,
                        bytes: 0,
                    });
                }
                Err(self.read_only(file))
            }
        }
    }

    /// Creates the folder (local), checking it can be written.
    pub(crate) async fn create(&self) -> Result<()> {
        if let Location::Local { dir, .. } = self {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    /// Files in a local folder (names), for the check that it holds nothing else.
    pub(crate) fn list_local(&self) -> Result<Vec<String>> {
        let Location::Local { dir, .. } = self else {
            return Ok(Vec::new());
        };
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io(dir, e))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Removes leftovers of a killed run: temporary files of `file`.
    pub(crate) fn remove_temporaries(&self, file: &str) {
        let Location::Local { dir, .. } = self else {
            return;
        };
        let prefix = format!(".{file}.tmp");
        if let Ok(names) = self.list_local() {
            for n in names.iter().filter(|n| n.starts_with(&prefix)) {
                let _ = std::fs::remove_file(dir.join(n));
            }
        }
    }

    fn read_only(&self, file: &str) -> Error {
        Error::invalid(
            "shard output",
            format!(
                "{}: shards are written to a local folder or s3:// gs:// az:// (feature `cloud`); \
                 http(s):// is read only",
                self.name(file)
            ),
        )
    }

    #[cfg(feature = "cloud")]
    fn object(
        &self,
        file: &str,
    ) -> Result<Option<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)>> {
        let Location::Remote { client, .. } = self else {
            return Ok(None);
        };
        let url = self.name(file);
        if !crate::fetch::scheme::is_object_store_url(&url) {
            return Ok(None);
        }
        client.object_stores().resolve(&url).map(Some)
    }

    #[cfg(feature = "cloud")]
    fn store_error(&self, file: &str, e: object_store::Error) -> Error {
        Error::Http {
            url: self.name(file),
            status: None,
            message: "object store request failed".into(),
            source: Some(crate::error::Cause::new(e)),
        }
    }
}

/// An object is uploaded in parts of this size once it is larger.
#[cfg(feature = "cloud")]
const UPLOAD_PART: usize = 8 << 20;

/// Parts of one object uploaded at once (each holds its bytes until sent).
#[cfg(feature = "cloud")]
const UPLOADS_AT_ONCE: usize = 4;

/// A file being written in pieces (see [`Location::writer`]). Dropped
/// without [`FileWriter::finish`], it leaves no file under its name (a
/// local temporary, `.FILE.tmp.PID.R`, is removed by the next run; an
/// unfinished multipart upload is the store's to expire).
pub(crate) enum FileWriter {
    Local {
        out: std::io::BufWriter<std::fs::File>,
        tmp: PathBuf,
        path: PathBuf,
        bytes: u64,
    },
    #[cfg(feature = "cloud")]
    Remote {
        loc: Location,
        file: String,
        /// Bytes not yet handed to the upload (at most [`UPLOAD_PART`]).
        pending: Vec<u8>,
        /// Started once the object passes one part.
        upload: Option<Box<object_store::WriteMultipart>>,
        bytes: u64,
    },
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileWriter::Local { path, bytes, .. } => f
                .debug_struct("FileWriter::Local")
                .field("path", path)
                .field("bytes", bytes)
                .finish(),
            #[cfg(feature = "cloud")]
            FileWriter::Remote { file, bytes, .. } => f
                .debug_struct("FileWriter::Remote")
                .field("file", file)
                .field("bytes", bytes)
                .finish(),
        }
    }
}

impl FileWriter {
    /// Appends `b` (an object: waits while [`UPLOADS_AT_ONCE`] parts are in flight).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file (disk full, …); an upload's error.
    pub(crate) async fn write(&mut self, b: &[u8]) -> Result<()> {
        match self {
            FileWriter::Local {
                out, path, bytes, ..
            } => {
                use std::io::Write;
                *bytes += b.len() as u64;
                out.write_all(b).map_err(|e| Error::io(&*path, e))
            }
            #[cfg(feature = "cloud")]
            FileWriter::Remote {
                loc,
                file,
                pending,
                upload,
                bytes,
            } => {
                *bytes += b.len() as u64;
                pending.extend_from_slice(b);
                if pending.len() < UPLOAD_PART {
                    return Ok(());
                }
                let up = match upload {
                    Some(u) => u,
                    None => {
                        let Some((store, key)) = loc.object(file)? else {
                            return Err(loc.read_only(file));
                        };
                        use object_store::ObjectStoreExt;
                        let started = store
                            .put_multipart(&key)
                            .await
                            .map_err(|e| loc.store_error(file, e))?;
                        upload.insert(Box::new(object_store::WriteMultipart::new_with_chunk_size(
                            started,
                            UPLOAD_PART,
                        )))
                    }
                };
                up.write(pending);
                pending.clear();
                up.wait_for_capacity(UPLOADS_AT_ONCE)
                    .await
                    .map_err(|e| loc.store_error(file, e))
            }
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        match self {
            FileWriter::Local { bytes, .. } => *bytes,
            #[cfg(feature = "cloud")]
            FileWriter::Remote { bytes, .. } => *bytes,
        }
    }

    /// Flushes, syncs and renames the file into place (a local file), or
    /// finishes its upload (an object); returns its size.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file; an upload's error.
    pub(crate) async fn finish(self) -> Result<u64> {
        match self {
            FileWriter::Local {
                out,
                tmp,
                path,
                bytes,
            } => {
                tokio::task::spawn_blocking(move || {
                    let done = || -> std::io::Result<()> {
                        let f = out.into_inner().map_err(|e| e.into_error())?;
                        f.sync_all()?;
                        drop(f);
                        std::fs::rename(&tmp, &path)?;
                        if let Some(d) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
                            let _ = d.sync_all();
                        }
                        Ok(())
                    };
                    done().map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        Error::io(&path, e)
                    })
                })
                .await
                .map_err(|e| Error::task("index write", e))??;
                Ok(bytes)
            }
            #[cfg(feature = "cloud")]
            FileWriter::Remote {
                loc,
                file,
                pending,
                upload,
                bytes,
            } => {
                match upload {
                    None => loc.put(&file, vec![Bytes::from(pending)]).await?,
                    Some(mut up) => {
                        up.write(&pending);
                        (*up)
                            .finish()
                            .await
                            .map_err(|e| loc.store_error(&file, e))?;
                    }
                }
                Ok(bytes)
            }
        }
    }
}

#[cfg(unix)]
fn read_at(f: &std::fs::File, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(out, offset)
}

#[cfg(windows)]
fn read_at(f: &std::fs::File, mut offset: u64, mut out: &mut [u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !out.is_empty() {
        let n = f.seek_read(out, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out = &mut out[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Writes `chunks` to `dir/.file.tmp.PID`, syncs, renames to `dir/file`
/// and syncs the folder. On failure the temporary file is removed and the
/// error names the file.
fn put_local(dir: &Path, file: &str, chunks: &[Bytes]) -> Result<()> {
    use std::io::Write;
    let path = dir.join(file);
    let tmp = dir.join(format!(".{file}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        for c in chunks {
            f.write_all(c)?;
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        // The rename itself is durable once the folder is synced (best
        // effort: not every platform can open a folder).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&path, e)
    })
}
