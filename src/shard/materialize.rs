//! [`materialize`]: a dataset config's samples, written once as shards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::dataset::TileDataset;
use crate::dataset::config::DatasetConfig;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::shard::format::{self, Region, SHARD_FORMAT};
use crate::shard::index::{
    INDEX_FORMAT, INDEX_FORMAT_V1, InputEntry, SampleEntry, SampleTable, ShardIndex, ShardInfo,
    TableWriter, index_json, merge_at, part_index_file, part_shards, part_stem, shard_file,
    try_merge,
};
use crate::shard::location::Location;
use crate::shard::{DEFAULT_SHARD_BYTES, config_hash};
use crate::stack::SampleLayout;

/// What [`materialize`] writes and where.
#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// A local folder, or `s3://bucket/prefix` (`gs://`, `az://`; feature `cloud`).
    pub out: String,
    /// `(I, N)`: write part `I` of `N` (see [`part_from_env`]); `None`: all.
    pub part: Option<(usize, usize)>,
    /// Target shard size in bytes (default 256 MiB); a shard holds at least one sample.
    pub shard_bytes: u64,
    /// The client for object-store output (with its registered stores);
    /// `None`: one configured from the environment.
    pub client: Option<HttpRangeClient>,
}

impl MaterializeOptions {
    /// All parts into `out`, 256 MiB shards.
    pub fn new(out: impl Into<String>) -> MaterializeOptions {
        MaterializeOptions {
            out: out.into(),
            part: None,
            shard_bytes: DEFAULT_SHARD_BYTES,
            client: None,
        }
    }
}

/// Where a [`materialize`] run stands; passed to its progress callback
/// after every sample and every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaterializeProgress {
    /// Samples of this part done (written, kept from an earlier run, or failed).
    pub samples_done: usize,
    /// Samples of this part.
    pub samples_total: usize,
    /// Samples that failed to load (recorded with their error).
    pub failed: usize,
    /// Shard bytes written by this run.
    pub bytes_written: u64,
    /// Shards of this part finished (written or kept).
    pub shards_done: usize,
    /// Shards of this part.
    pub shards_total: usize,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// What a [`materialize`] run did.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterializeReport {
    /// `(I, N)` of the part written.
    pub part: (usize, usize),
    /// Samples of this part.
    pub samples: usize,
    /// Samples loaded and written by this run.
    pub written: usize,
    /// Samples in shards an earlier run finished (kept, not rebuilt).
    pub kept: usize,
    /// Samples that failed to load: `(index, id, error)`. They are in the
    /// index with their error; the loaders apply their error policy.
    pub failed: Vec<(usize, String, String)>,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Shards kept from an earlier run.
    pub shards_kept: usize,
    /// Shard bytes written by this run.
    pub bytes_written: u64,
    /// Bytes per sample in the shards (region and alignment pad).
    pub bytes_per_sample: u64,
    /// Bytes of one sample in memory as the loader holds it (f32 stack and layers).
    pub memory_bytes_per_sample: u64,
    /// Seconds the run took (opening the dataset included).
    pub seconds: f64,
    /// Seconds spent opening the dataset (search and planning).
    pub open_seconds: f64,
    /// Candidates and samples dropped by the dataset's filters, by reason.
    pub candidates: usize,
    /// Dropped by the filters before materializing, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// The index file written (`index.json`, or this part's).
    pub index: String,
    /// True when `index.json` (all parts) exists after this run.
    pub complete: bool,
}

impl std::fmt::Display for MaterializeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (i, n) = self.part;
        write!(
            f,
            "part {i}/{n}: {} samples ({} written, {} kept from an earlier run, {} failed) in {} \
             shards ({} written, {} kept), {:.1} MB written in {:.1} s ({:.1} samples/s), \
             {:.2} MB per sample ({:.2} MB in memory)",
            self.samples,
            self.written,
            self.kept,
            self.failed.len(),
            self.shards_written + self.shards_kept,
            self.shards_written,
            self.shards_kept,
            self.bytes_written as f64 / 1e6,
            self.seconds,
            self.written as f64 / (self.seconds - self.open_seconds).max(1e-9),
            self.bytes_per_sample as f64 / 1e6,
            self.memory_bytes_per_sample as f64 / 1e6,
        )?;
        for (why, k) in &self.dropped {
            write!(f, "; {k} dropped before: {why}")?;
        }
        for (idx, id, e) in &self.failed {
            write!(f, "; sample {idx} ({id}) failed: {e}")?;
        }
        Ok(())
    }
}

/// `(I, N)` from the environment of an array job, or `None` outside one:
/// a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with `N` from
/// `parts`, e.g. the Job's `completions`), or a Slurm array
/// (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, `N` from `parts` or
/// `SLURM_ARRAY_TASK_COUNT`).
///
/// # Errors
/// [`Error::Invalid`] naming the variable: not a number, or no count.
pub fn part_from_env(parts: Option<usize>) -> Result<Option<(usize, usize)>> {
    let var = |k: &'static str| -> Result<Option<usize>> {
        match std::env::var(k) {
            Ok(v) => v.trim().parse().map(Some).map_err(|e| {
                Error::invalid_because(k, format!("{v:?} is not a non-negative integer"), e)
            }),
            Err(_) => Ok(None),
        }
    };
    if let Some(i) = var("JOB_COMPLETION_INDEX")? {
        let n = parts.ok_or_else(|| {
            Error::invalid(
                "JOB_COMPLETION_INDEX",
                format!(
                    "is {i} but the number of parts is not given (--parts, the Job's completions)"
                ),
            )
        })?;
        return Ok(Some((i, n)));
    }
    if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
        let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let n = match parts {
            Some(n) => n,
            None => var("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                Error::invalid(
                    "SLURM_ARRAY_TASK_ID",
                    format!("is {id} but neither --parts nor SLURM_ARRAY_TASK_COUNT is set"),
                )
            })?,
        };
        return Ok(Some((id.saturating_sub(min), n)));
    }
    Ok(None)
}

/// What `dataset.json` holds: the folder's identity. Every part writes the
/// same bytes; a folder holding another dataset is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Identity {
    format: String,
    name: String,
    config_hash: String,
    samples: usize,
    shape: [usize; 4],
    samples_per_shard: usize,
    shard_count: usize,
}

/// The dataset's layout and the index fields every part shares.
struct Layout {
    identity: Identity,
    index: ShardIndex,
    /// Bytes of a loaded sample's region with its pad.
    stride: u64,
}

/// Writes every sample of `cfg` (or of one part) as shards plus an index
/// into `opts.out`, through the online loader's load path; see the
/// [module docs](crate::shard::read::ShardSet) for the files and why they are so. A
/// rerun after a crash keeps the finished shards and writes the same bytes
/// for the rest. `progress` is called after every sample and shard.
///
/// Call it from a plain thread (it runs its own runtime).
///
/// ```no_run
/// use tilestack::shard::MaterializeOptions;
/// use tilestack::{DatasetConfig, materialize};
/// let cfg = DatasetConfig::from_file("datasets/oakland-ships.toml".as_ref())?;
/// let report = materialize(&cfg, &MaterializeOptions::new("shards/oakland-ships"), &mut |p| {
///     eprintln!("{}/{} samples", p.samples_done, p.samples_total);
/// })?;
/// println!("{report}");
/// # Ok::<(), tilestack::Error>(())
/// ```
///
/// # Errors
/// The dataset's errors ([`TileDataset::open`]); [`Error::Invalid`] for a
/// part `I/N` with `I ≥ N`, or an output folder holding another dataset or
/// other files (naming them); [`Error::Io`] naming the file that could not
/// be written (disk full, permission denied) — no partial shard is left.
pub fn materialize(
    cfg: &DatasetConfig,
    opts: &MaterializeOptions,
    progress: &mut dyn FnMut(&MaterializeProgress),
) -> Result<MaterializeReport> {
    let t0 = Instant::now();
    let (i, n) = opts.part.unwrap_or((0, 1));
    if n == 0 || i >= n {
        return Err(Error::invalid(
            "part",
            format!("{i}/{n}: need 0 ≤ I < N (parts count from 0)"),
        ));
    }
    let loc = Location::parse(&opts.out, opts.client.clone())?;
    let ds = Arc::new(TileDataset::open(cfg)?);
    let open_seconds = t0.elapsed().as_secs_f64();
    let handle = ds.handle()?;
    handle.block_on(run(
        ds.clone(),
        cfg,
        opts,
        &loc,
        (i, n),
        t0,
        open_seconds,
        progress,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    ds: Arc<TileDataset>,
    cfg: &DatasetConfig,
    opts: &MaterializeOptions,
    loc: &Location,
    (i, n): (usize, usize),
    t0: Instant,
    open_seconds: f64,
    progress: &mut dyn FnMut(&MaterializeProgress),
) -> Result<MaterializeReport> {
    let layout = layout(&ds, cfg, opts.shard_bytes);
    claim(loc, &layout.identity).await?;
    let shards = part_shards(i, n, layout.identity.shard_count);
    let sps = layout.identity.samples_per_shard;
    let total = ds.len();
    let samples_of = |k: usize| (k * sps)..((k + 1) * sps).min(total);
    let part_samples: usize = shards.clone().map(|k| samples_of(k).len()).sum();
    let mut prog = MaterializeProgress {
        samples_total: part_samples,
        shards_total: shards.len(),
        ..MaterializeProgress::default()
    };
    let mut report = MaterializeReport {
        part: (i, n),
        samples: part_samples,
        written: 0,
        kept: 0,
        failed: Vec::new(),
        shards_written: 0,
        shards_kept: 0,
        bytes_written: 0,
        bytes_per_sample: layout.stride,
        memory_bytes_per_sample: memory_bytes(&layout.index),
        seconds: 0.0,
        open_seconds,
        candidates: layout.index.candidates,
        dropped: layout.index.dropped.clone(),
        index: String::new(),
        complete: false,
    };
    // Shards an earlier run finished are kept. Nothing per sample is held
    // across shards: the index is written at the end from the shards'
    // own headers, one shard at a time.
    let mut infos: BTreeMap<usize, ShardInfo> = BTreeMap::new();
    let mut todo = Vec::new();
    for k in shards.clone() {
        let file = shard_file(k);
        loc.remove_temporaries(&file);
        match finished(loc, &file, k, samples_of(k), &layout).await {
            Some((info, es)) => {
                prog.samples_done += es.len();
                report.kept += es.len();
                for e in es {
                    if let Some(err) = e.error {
                        report.failed.push((e.index, e.id, err));
                    }
                }
                infos.insert(k, info);
                report.shards_kept += 1;
                prog.shards_done += 1;
            }
            None => {
                // Rewritten by this run: a handle the check opened would
                // read the file being replaced.
                loc.forget(&file);
                todo.push(k);
            }
        }
    }
    prog.failed = report.failed.len();
    prog.elapsed_s = t0.elapsed().as_secs_f64();
    progress(&prog);
    // The rest: samples loaded concurrently in order, a shard written as
    // soon as its last sample is in (while the next shard's load), at most
    // one write in flight.
    let conc = cfg
        .loader
        .loads_at_once
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |c| c.get()));
    let jobs = todo
        .iter()
        .flat_map(|&k| samples_of(k).map(move |s| (k, s)));
    let mut loads = futures::stream::iter(jobs.map(|(k, s)| {
        let ds = ds.clone();
        let task = tokio::spawn(async move {
            let out = ds.load_with_layers(s, None).await;
            out.and_then(|(stack, layers, inputs)| {
                let region = format::encode(&stack, &layers, &inputs, ds.input_layouts())?;
                let mut e = entry_of(&ds, s, &stack, &inputs);
                e.length = region.bytes.len() as u64;
                e.crc32 = crc32fast::hash(&region.bytes);
                Ok((e, region))
            })
        });
        async move { (k, s, task.await) }
    }))
    .buffered(conc.max(1));
    let mut current: Option<(usize, Vec<Row>)> = None;
    let mut writing: Option<tokio::task::JoinHandle<Result<ShardInfo>>> = None;
    while let Some((k, s, out)) = loads.next().await {
        let (entry, region) = match out {
            Ok(Ok((e, r))) => (e, Some(r)),
            Ok(Err(e)) => {
                let chain = e.chain();
                tracing::warn!(sample = s, error = %chain, "sample failed; recorded in the index");
                report
                    .failed
                    .push((s, ds.samples()[s].id.clone(), chain.clone()));
                prog.failed += 1;
                (failed_entry(&ds, s, chain), None)
            }
            Err(join) => return Err(Error::task("sample load", join)),
        };
        let shard = current.get_or_insert_with(|| (k, Vec::new()));
        shard.1.push((s, region, entry));
        prog.samples_done += 1;
        report.written += 1;
        if shard.1.len() == samples_of(k).len() {
            let Some((k, rows)) = current.take() else {
                continue;
            };
            if let Some(w) = writing.take() {
                let info = w.await.map_err(|e| Error::task("shard write", e))??;
                finish_shard(&mut report, &mut prog, &mut infos, info);
            }
            let (chunks, bytes) = assemble(k, rows, &layout)?;
            let file = shard_file(k);
            let loc2 = loc.clone_for_write();
            writing = Some(tokio::spawn(async move {
                loc2.put(&file, chunks).await?;
                Ok(ShardInfo {
                    shard: k,
                    file,
                    bytes,
                })
            }));
        }
        prog.elapsed_s = t0.elapsed().as_secs_f64();
        progress(&prog);
    }
    if let Some(w) = writing.take() {
        let info = w.await.map_err(|e| Error::task("shard write", e))??;
        finish_shard(&mut report, &mut prog, &mut infos, info);
        prog.elapsed_s = t0.elapsed().as_secs_f64();
        progress(&prog);
    }
    drop(loads);
    // This part's index (its table from the shards' headers, streaming),
    // then the whole one when every part is there.
    let mut index = layout.index.clone();
    index.part = (n > 1).then_some([i, n]);
    index.shards = infos.into_values().collect();
    let stem = if n > 1 {
        part_stem(i, n)
    } else {
        "index".to_string()
    };
    let first = samples_of(shards.start).start.min(total);
    for f in ["json", "samples.bin", "meta.jsonl"] {
        loc.remove_temporaries(&format!("{stem}.{f}"));
    }
    let mut table = TableWriter::create(loc, &stem, first)?;
    for k in shards.clone() {
        for e in shard_entries(loc, k).await? {
            table.push(&e).await?;
        }
    }
    index.table = table.finish().await?;
    let file = format!("{stem}.json");
    loc.put(&file, vec![Bytes::from(index_json(&index)?)])
        .await?;
    report.index = loc.name(&file);
    report.complete = if n > 1 {
        try_merge(loc, n).await?
    } else {
        true
    };
    report.failed.sort();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn finish_shard(
    report: &mut MaterializeReport,
    prog: &mut MaterializeProgress,
    infos: &mut BTreeMap<usize, ShardInfo>,
    info: ShardInfo,
) {
    report.shards_written += 1;
    report.bytes_written += info.bytes;
    prog.shards_done += 1;
    prog.bytes_written += info.bytes;
    infos.insert(info.shard, info);
}

/// Bytes of one sample as the loader holds it: the f32 stack, f32 layers
/// per step and mask, three f32 metadata per step.
fn memory_bytes(index: &ShardIndex) -> u64 {
    let [t, c, h, w] = index.shape;
    let px = (h * w) as u64;
    let t = t as u64;
    let inputs: u64 = index
        .inputs
        .iter()
        .map(|i| i.memory_bytes(1, i.shape[2], i.shape[3]))
        .sum();
    4 * (t * c as u64 * px
        + (index.labels.len() as u64 * t + index.masks.len() as u64) * px
        + 3 * t)
        + inputs
}

/// The layout a config gives: samples per shard from the target size.
fn layout(ds: &TileDataset, cfg: &DatasetConfig, shard_bytes: u64) -> Layout {
    let SampleLayout {
        shape,
        bands,
        labels,
        masks,
    } = ds.layout();
    let samples = ds.len();
    let hash = config_hash(cfg);
    let mut index = ShardIndex {
        format: INDEX_FORMAT.into(),
        tilestack_version: env!("CARGO_PKG_VERSION").into(),
        name: cfg.name.clone(),
        config_hash: hash.clone(),
        config: cfg.clone(),
        samples,
        shape,
        bands,
        labels,
        masks,
        samples_per_shard: 0,
        shard_count: 0,
        candidates: ds.report().candidates,
        dropped: ds.report().dropped.clone(),
        part: None,
        shards: Vec::new(),
        table: SampleTable::empty("index", 0),
        inputs: ds.input_layouts().to_vec(),
    };
    // A shape that overflows is refused when the dataset's requests are checked.
    let region = index.region_bytes().unwrap_or(u64::MAX);
    let stride = region.saturating_add(format::pad_for(region));
    let sps = usize::try_from((shard_bytes / stride.max(1)).max(1)).unwrap_or(usize::MAX);
    let shard_count = samples.div_ceil(sps);
    index.samples_per_shard = sps;
    index.shard_count = shard_count;
    let identity = Identity {
        format: INDEX_FORMAT.into(),
        name: cfg.name.clone(),
        config_hash: hash,
        samples,
        shape,
        samples_per_shard: sps,
        shard_count,
    };
    Layout {
        identity,
        index,
        stride,
    }
}

/// Writes `dataset.json`, or checks the one there is this dataset; a local
/// folder holding anything but this dataset's files is refused.
async fn claim(loc: &Location, id: &Identity) -> Result<()> {
    loc.create().await?;
    let name = loc.name("dataset.json");
    match loc.read_all("dataset.json").await? {
        Some(bytes) => {
            let there: Identity = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid_because(
                    "shard output",
                    format!("{name} is not a tilestack dataset file: choose an empty folder"),
                    e,
                )
            })?;
            if there.config_hash != id.config_hash || there.name != id.name {
                return Err(Error::invalid(
                    "shard output",
                    format!(
                        "{name}: the folder holds dataset {:?} (config hash {}), not {:?} ({}): \
                         choose another folder",
                        there.name, there.config_hash, id.name, id.config_hash
                    ),
                ));
            }
            // A folder written before the sample table: the same dataset
            // is this one; its index is rewritten as a table at the end.
            let there = if there.format == INDEX_FORMAT_V1 {
                Identity {
                    format: id.format.clone(),
                    ..there
                }
            } else {
                there
            };
            if there != *id {
                return Err(Error::invalid(
                    "shard output",
                    format!(
                        "{name}: the folder holds this dataset in another layout ({} samples per \
                         shard, {} shards; this run: {}, {}): use the same --shard-mb, or another folder",
                        there.samples_per_shard,
                        there.shard_count,
                        id.samples_per_shard,
                        id.shard_count
                    ),
                ));
            }
            let ours = identity_json(id)?;
            if bytes != ours {
                loc.put("dataset.json", vec![Bytes::from(ours)]).await?;
            }
            Ok(())
        }
        None => {
            let others: Vec<String> = loc.list_local()?.into_iter().filter(|f| !ours(f)).collect();
            if let Some(f) = others.first() {
                return Err(Error::invalid(
                    "shard output",
                    format!(
                        "{} holds {} file(s) that are not this dataset's ({}{}): choose an empty folder",
                        loc.name(""),
                        others.len(),
                        f,
                        if others.len() > 1 { ", …" } else { "" }
                    ),
                ));
            }
            loc.put("dataset.json", vec![Bytes::from(identity_json(id)?)])
                .await
        }
    }
}

fn identity_json(id: &Identity) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(id)
        .map_err(|e| Error::internal_because("dataset.json", "cannot write it as JSON", e))
}

/// A file `materialize` itself writes (a temporary one of a killed run included).
fn ours(f: &str) -> bool {
    let f = f.strip_prefix('.').unwrap_or(f);
    (f.starts_with("shard-") && f.contains(".safetensors"))
        || (f.starts_with("index")
            && (f.contains(".json") || f.contains(".samples.bin") || f.contains(".meta.jsonl")))
        || f.starts_with("dataset.json")
}

/// The entries of shard `k` when a finished, matching copy exists: its
/// header names this dataset and exactly its samples, and its size is right.
async fn finished(
    loc: &Location,
    file: &str,
    k: usize,
    samples: std::ops::Range<usize>,
    layout: &Layout,
) -> Option<(ShardInfo, Vec<SampleEntry>)> {
    let size = loc.size(file).await.ok()??;
    let (end, entries, meta) = read_shard_header(loc, file, size).await.ok()?;
    let indexes: Vec<usize> = entries.iter().map(|e| e.index).collect();
    let loaded = entries.iter().filter(|e| e.error.is_none()).count() as u64;
    let ok = meta.get("config_hash") == Some(&layout.identity.config_hash)
        && indexes == samples.collect::<Vec<_>>()
        && entries.iter().all(|e| e.shard == k)
        && size == end + loaded * layout.stride;
    if !ok {
        tracing::warn!(file = %loc.name(file), "a shard that does not match this dataset's layout is rewritten");
        return None;
    }
    Some((
        ShardInfo {
            shard: k,
            file: file.to_string(),
            bytes: size,
        },
        entries,
    ))
}

/// Shard headers are refused above this size.
const MAX_SHARD_HEADER: u64 = 64 << 20;

/// A shard's header: its length, its entries and its `__metadata__`.
async fn read_shard_header(
    loc: &Location,
    file: &str,
    size: u64,
) -> Result<(u64, Vec<SampleEntry>, BTreeMap<String, String>)> {
    let name = loc.name(file);
    let bad = |m: String| Error::invalid("shard", format!("{name}: {m}"));
    let mut head = vec![0u8; 8];
    loc.read_into(file, 0, &mut head).await?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[..8]);
    let n = u64::from_le_bytes(len);
    if n > MAX_SHARD_HEADER || 8 + n > size {
        return Err(bad(format!("a {n}-byte header in {size} bytes")));
    }
    head.resize(8 + n as usize, 0);
    loc.read_into(file, 0, &mut head).await?;
    let parsed = format::parse_header(&head, MAX_SHARD_HEADER)
        .and_then(|h| {
            let Some((end, header)) = h else {
                return Err(format::HeaderError::Short);
            };
            format::header_entries(&header).map(|(e, m)| (end, e, m))
        })
        .map_err(|e| Error::invalid_because("shard", format!("{name}: its header"), e))?;
    Ok(parsed)
}

/// Shard `k`'s entries (as its header lists them), for the index.
async fn shard_entries(loc: &Location, k: usize) -> Result<Vec<SampleEntry>> {
    let file = shard_file(k);
    let size = loc.size(&file).await?.ok_or_else(|| {
        Error::invalid(
            "shard",
            format!("{} is gone before the index was written", loc.name(&file)),
        )
    })?;
    Ok(read_shard_header(loc, &file, size).await?.1)
}

/// A shard's bytes (header, then each loaded sample's region and pad) and
/// its size.
/// One built sample waiting for its shard: its index, its encoded region
/// (`None` when it failed) and its index entry.
type Row = (usize, Option<Region>, SampleEntry);

fn assemble(k: usize, rows: Vec<Row>, layout: &Layout) -> Result<(Vec<Bytes>, u64)> {
    let mut entries: Vec<SampleEntry> = rows
        .iter()
        .map(|r| SampleEntry {
            shard: k,
            ..r.2.clone()
        })
        .collect();
    let regions: Vec<(usize, &Region)> = rows
        .iter()
        .filter_map(|(s, r, _)| r.as_ref().map(|r| (*s, r)))
        .collect();
    let meta = BTreeMap::from([
        ("format".to_string(), SHARD_FORMAT.to_string()),
        (
            "config_hash".to_string(),
            layout.identity.config_hash.clone(),
        ),
        ("dataset".to_string(), layout.identity.name.clone()),
        ("shard".to_string(), k.to_string()),
    ]);
    let header = format::header(&regions, &mut entries, meta)?;
    let mut size = header.len() as u64;
    let mut chunks = vec![Bytes::from(header)];
    for (_, r, _) in rows {
        if let Some(r) = r {
            let pad = format::pad_for(r.bytes.len() as u64);
            size += r.bytes.len() as u64 + pad;
            chunks.push(Bytes::from(r.bytes));
            if pad > 0 {
                chunks.push(Bytes::from(vec![0u8; pad as usize]));
            }
        }
    }
    Ok((chunks, size))
}

/// The index entry of a loaded sample (its region's checksum and length are
/// filled in here; its offset when the shard's header is made).
fn entry_of(
    ds: &TileDataset,
    s: usize,
    stack: &crate::stack::TileStack,
    inputs: &[crate::dataset::inputs::InputStack],
) -> SampleEntry {
    let mut e = base_entry(ds, s);
    e.inputs = inputs.iter().map(InputEntry::of).collect();
    let opt =
        |v: &[f32]| -> Vec<Option<f32>> { v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect() };
    e.days = stack.days.clone();
    e.epsg = stack.grid.epsg.code();
    e.transform = stack.grid.transform.to_gdal();
    e.eo_cloud_cover = opt(&stack.eo_cloud_cover);
    e.pct_nans = opt(&stack.pct_nans);
    e.tile_cloud_fraction = opt(&stack.tile_cloud_fraction);
    e.items = stack.items.clone();
    e.read_errors = stack.read_errors.clone();
    e
}

fn base_entry(ds: &TileDataset, s: usize) -> SampleEntry {
    let sps = ds.samples();
    let x = &sps[s];
    // The sample's grid was made once when the dataset opened (its tile
    // outline placed it); making it again cannot fail.
    let grid = ds.request(s).and_then(|r| r.grid()).ok();
    SampleEntry {
        index: s,
        id: x.id.clone(),
        centroid: x.centroid,
        start: x.start,
        end: x.end,
        epsg: grid.as_ref().map_or(0, |g| g.epsg.code()),
        transform: grid.map_or([0.0; 6], |g| g.transform.to_gdal()),
        ..SampleEntry::default()
    }
}

fn failed_entry(ds: &TileDataset, s: usize, error: String) -> SampleEntry {
    SampleEntry {
        error: Some(error),
        ..base_entry(ds, s)
    }
}

/// Merges the part indexes `index-I-of-N.json` (and their tables) at `out`
/// into `index.json` and its table (what the last part to finish does by
/// itself): for runs whose parts finished while another was still
/// writing, or to check a finished run. Streams the parts' rows and
/// records: memory of a read buffer, not of the samples.
///
/// # Errors
/// [`Error::Invalid`] naming the first missing part, or parts of another
/// dataset; the write's errors; [`Error::Internal`] when its runtime cannot
/// start.
pub fn merge_parts(out: &str, n: usize, client: Option<HttpRangeClient>) -> Result<ShardIndex> {
    let rt = crate::runtime::own_runtime("merge_parts", "tilestack-merge", Some(1))?;
    let loc = Location::parse(out, client)?;
    rt.block_on(async {
        for i in 0..n {
            let f = part_index_file(i, n);
            if loc.read_all(&f).await?.is_none() {
                return Err(Error::invalid(
                    "shard index",
                    format!(
                        "{} is missing: part {i} of {n} has not finished",
                        loc.name(&f)
                    ),
                ));
            }
        }
        merge_at(&loc, n).await?.ok_or_else(|| {
            Error::invalid(
                "shard index",
                format!(
                    "{}: a part's index vanished during the merge",
                    loc.name("index.json")
                ),
            )
        })
    })
}
