//! `file://` hrefs: byte ranges of local files, with the contract of an HTTP
//! range read (exactly the range, or up to the end when reading to EOF).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::error::{Cause, Error, Result};
use crate::fetch::metrics::FetchMetrics;
use crate::fetch::version::{ObjectVersion, Versions};

/// Bytes `range` of the local file `path` (href `url`): exactly the range,
/// or with `to_eof` up to the end of the file. Read on a blocking thread;
/// the file's size is recorded as its version under `url`.
pub(super) async fn read_file(
    url: &str,
    path: PathBuf,
    range: Range<u64>,
    to_eof: bool,
    metrics: &FetchMetrics,
    versions: &Versions,
) -> Result<Bytes> {
    let err = |message: String, source: Option<Cause>| Error::Http {
        url: url.to_string(),
        status: None,
        message: format!("bytes {}..{}: {message}", range.start, range.end),
        source,
    };
    if let Ok(m) = tokio::fs::metadata(&path).await {
        versions.record(
            url,
            ObjectVersion {
                size: Some(m.len()),
                etag: None,
            },
        );
    }
    let r = range.clone();
    let read = tokio::task::spawn_blocking(move || read_range(path, r, to_eof))
        .await
        .map_err(|e| err("file read task failed".into(), Some(Cause::new(e))))?;
    let bytes = match read {
        Ok(b) => b,
        Err(ReadError::Io(what, e)) => return Err(err(what.into(), Some(Cause::new(e)))),
        Err(ReadError::Short(len)) => {
            return Err(err(format!("the file has only {len} bytes"), None));
        }
    };
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    metrics
        .bytes
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(bytes)
}

enum ReadError {
    Io(&'static str, std::io::Error),
    Short(u64),
}

fn read_range(path: PathBuf, range: Range<u64>, to_eof: bool) -> Result<Bytes, ReadError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&path).map_err(|e| ReadError::Io("opening", e))?;
    let len = f
        .metadata()
        .map_err(|e| ReadError::Io("reading its size", e))?
        .len();
    let end = if to_eof {
        range.end.min(len)
    } else {
        range.end
    };
    if end > len {
        return Err(ReadError::Short(len));
    }
    if range.start >= end {
        return Ok(Bytes::new());
    }
    f.seek(SeekFrom::Start(range.start))
        .map_err(|e| ReadError::Io("seeking", e))?;
    let mut buf = vec![0u8; (end - range.start) as usize];
    f.read_exact(&mut buf)
        .map_err(|e| ReadError::Io("reading", e))?;
    Ok(Bytes::from(buf))
}
