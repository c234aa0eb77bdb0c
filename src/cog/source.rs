//! async-tiff adapters: `AsyncFileReader`s over this crate's range client
//! (header reads, replayed from a persisted header where possible).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_tiff::error::{AsyncTiffError, AsyncTiffResult};
use async_tiff::reader::AsyncFileReader;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::cog::header_store::StoredHeader;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;

/// The reads of one header parse: each range as asked, with what came back.
pub(super) type HeaderReads = Vec<(Range<u64>, Bytes)>;

/// `AsyncFileReader` over one URL of an [`HttpRangeClient`], for header reads
/// (ranges running past EOF are cut short, as readahead needs). Reads are
/// served from a persisted header when it has them, and recorded so the
/// header can be persisted.
#[derive(Debug)]
pub(super) struct HttpFile {
    client: HttpRangeClient,
    url: String,
    replay: Option<StoredHeader>,
    pub(super) record: Arc<Mutex<HeaderReads>>,
    pub(super) fetched: Arc<std::sync::atomic::AtomicBool>,
}

impl HttpFile {
    pub(super) fn new(client: HttpRangeClient, url: &str, replay: Option<StoredHeader>) -> Self {
        HttpFile {
            client,
            url: url.to_string(),
            replay,
            record: Arc::new(Mutex::new(Vec::new())),
            fetched: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    async fn read(&self, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        let bytes = match self.replay.as_ref().and_then(|h| h.replay(&range)) {
            Some(b) => b,
            None => {
                self.fetched
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if to_eof {
                    self.client
                        .get_range_to_eof(&self.url, range.clone())
                        .await?
                } else {
                    self.client.get_range(&self.url, range.clone()).await?
                }
            }
        };
        let mut rec = self.record.lock().unwrap_or_else(|p| p.into_inner());
        rec.push((range, bytes.clone()));
        Ok(bytes)
    }

    /// Several exact ranges: replayed where persisted, the rest fetched in
    /// one coalesced, concurrent batch.
    async fn read_many(&self, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let replayed: Vec<Option<Bytes>> = ranges
            .iter()
            .map(|r| self.replay.as_ref().and_then(|h| h.replay(r)))
            .collect();
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&replayed)
            .filter(|(_, b)| b.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let mut fetched = if missing.is_empty() {
            Vec::new()
        } else {
            self.fetched
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.client.get_ranges(&self.url, missing).await?
        }
        .into_iter();
        let out: Vec<Bytes> = replayed
            .into_iter()
            .map(|b| b.or_else(|| fetched.next()).unwrap_or_default())
            .collect();
        let mut rec = self.record.lock().unwrap_or_else(|p| p.into_inner());
        rec.extend(ranges.into_iter().zip(out.iter().cloned()));
        Ok(out)
    }
}

pub(super) fn external(e: Error) -> AsyncTiffError {
    AsyncTiffError::External(Box::new(e))
}

impl AsyncFileReader for HttpFile {
    fn get_bytes<'a, 'b>(&'a self, range: Range<u64>) -> BoxFuture<'b, AsyncTiffResult<Bytes>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.read(range, true).await.map_err(external) })
    }

    fn get_byte_ranges<'a, 'b>(
        &'a self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'b, AsyncTiffResult<Vec<Bytes>>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.read_many(ranges).await.map_err(external) })
    }
}
