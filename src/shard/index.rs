//! The shard index: what a folder of shards holds, how its files are
//! named, parts' indexes and their merge. Both the writer
//! ([`materialize`](crate::shard::materialize())) and the reader
//! ([`ShardSet`](crate::shard::ShardSet)) use it; neither imports the other.
//!
//! # The files
//!
//! ```text
//! index.json            the header (ShardIndex): dataset, layout, shards, and `table`
//! index.samples.bin     one fixed-width row per sample, in sample order (SampleTable::columns)
//! index.meta.jsonl      one JSON line per sample: its variable-length fields
//! ```
//!
//! A part `I` of `N` writes the same three as `index-I-of-N.json`,
//! `index-I-of-N.samples.bin` and `index-I-of-N.meta.jsonl`; the merge
//! concatenates the parts' rows and lines (rebasing each row's
//! `meta_offset`), streaming, into the three files a single run writes,
//! byte for byte.
//!
//! # Why this layout
//! * **Opening a million samples reads 136 bytes each**, not ~4 KB of
//!   JSON: what the loader needs for every sample (shard, offset, checksum,
//!   grid) is kept in memory, ~90 bytes a sample; the rest (id, days,
//!   per-step cloud and NaN fractions, scene ids, read errors, the error)
//!   is one positioned read and one small JSON parse when a sample is
//!   loaded.
//! * **A row is a numpy structured record**, little-endian and packed,
//!   each column naturally aligned, its dtype spelled in the header; the
//!   table is one line of Python:
//!
//!   ```python
//!   h = json.load(open("DIR/index.json"))
//!   rows = np.fromfile("DIR/" + h["table"]["rows"], dtype=[tuple(c) for c in h["table"]["columns"]])
//!   ```
//!
//!   and sample `k`'s other fields are
//!   `json.loads(open("DIR/index.meta.jsonl", "rb").read()[rows["meta_offset"][k]:][:rows["meta_length"][k]])`
//!   (or `[json.loads(l) for l in open(...)]`: line `k` is sample `k`).
//! * **Not Parquet**: the reader is in the default library, which must
//!   stay free of arrow's large build (feature `geoparquet`); a fixed-width
//!   table needs no dependency to write, stream or check, and numpy reads it
//!   without pyarrow.
//! * **The header is written last**: its presence means the table beside it
//!   is complete (a part's header is what the merge waits for).
//!
//! An `index.json` of the format before the table (`tilestack-shards/1`,
//! every sample's entry inline) is still read: [`ShardSet`](crate::shard::ShardSet) converts it
//! in memory (held whole, as that format must be); a rerun of `materialize`
//! on the folder rewrites it as a table without loading any sample again.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::dataset::config::DatasetConfig;
use crate::dataset::inputs::{InputLayout, InputStack};
use crate::error::{Error, Result};
use crate::shard::location::{FileWriter, Location};
use crate::stack::SampleLayout;

/// `format` of an index and of `dataset.json`.
pub const INDEX_FORMAT: &str = "tilestack-shards/2";

/// The format before the sample table: every entry inline in `index.json`.
/// Still read; written only by [`write_index_v1`] (for tests and benches).
pub const INDEX_FORMAT_V1: &str = "tilestack-shards/1";

/// Bytes of one row of the sample table.
pub const ROW_BYTES: usize = 136;

/// One sample's line in the table is refused above this size (a record
/// holds its scene ids and read errors: kilobytes).
const MAX_META_RECORD: u32 = 64 << 20;

/// Rows read at once when a table is opened or merged.
const ROWS_PER_READ: usize = 8192;

/// One sample as the index records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleEntry {
    /// Its index in the dataset (and the tensor prefix, six digits).
    pub index: usize,
    /// The sample id.
    pub id: String,
    /// The shard holding it.
    pub shard: usize,
    /// Byte offset of its region (its `data` tensor) in the shard file.
    pub offset: u64,
    /// Bytes of its region (tensors, without the pad); 0 for a failed sample.
    pub length: u64,
    /// CRC-32 of the region's bytes.
    pub crc32: u32,
    /// `[lon, lat]` of the tile centre.
    pub centroid: [f64; 2],
    /// First day of the sample's time window.
    pub start: NaiveDate,
    /// Last day of the sample's time window.
    pub end: NaiveDate,
    /// First day of each step.
    pub days: Vec<NaiveDate>,
    /// EPSG code of the tile grid.
    pub epsg: u32,
    /// GDAL geotransform of the tile grid.
    pub transform: [f64; 6],
    /// Per step, max scene `eo:cloud_cover`, percent (`null`: no scene).
    pub eo_cloud_cover: Vec<Option<f32>>,
    /// Per step, percent of no-data input pixels.
    pub pct_nans: Vec<Option<f32>>,
    /// Per step, the tile's own cloud fraction (`null`: not read).
    pub tile_cloud_fraction: Vec<Option<f32>>,
    /// Scene ids per step.
    pub items: Vec<Vec<String>>,
    /// Windows read as no data (`errors_as_nodata`).
    pub read_errors: Vec<String>,
    /// Why the sample failed to load, when it did (it has no tensors then;
    /// the loaders apply their error policy to it as they would online).
    pub error: Option<String>,
    /// The inputs after the first, in config order: what their tensors do
    /// not hold (empty for a dataset of one input, and then not written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputEntry>,
}

/// One input after the first, as a sample's entry records it: its days and
/// per-step provenance (its data, cloud/NaN metadata and has-data flags are
/// tensors of the sample's region).
///
/// ```
/// let e = tilestack::shard::InputEntry { name: "s1".into(), ..Default::default() };
/// assert!(e.items.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputEntry {
    /// The input's name.
    pub name: String,
    /// First day of each of its steps.
    pub days: Vec<NaiveDate>,
    /// Scene ids per step.
    pub items: Vec<Vec<String>>,
    /// Per step, its scenes' `sat:orbit_state` (comma-separated).
    pub orbit_state: Vec<String>,
    /// Per step, its scenes' `platform` (comma-separated).
    pub platform: Vec<String>,
    /// Windows read as no data (`errors_as_nodata`).
    pub read_errors: Vec<String>,
}

impl InputEntry {
    /// What `input`'s tensors do not hold.
    pub(crate) fn of(input: &InputStack) -> InputEntry {
        InputEntry {
            name: input.name.clone(),
            days: input.stack.days.clone(),
            items: input.stack.items.clone(),
            orbit_state: input.orbit_state.clone(),
            platform: input.platform.clone(),
            read_errors: input.stack.read_errors.clone(),
        }
    }
}

/// One shard as the index records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Its number.
    pub shard: usize,
    /// File name, relative to the index.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// One column of the sample table, as numpy spells it: `[name, dtype]`,
/// or `[name, dtype, [n]]` for `n` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    /// One value.
    Scalar(String, String),
    /// `n` values.
    Array(String, String, [usize; 1]),
}

/// Where an index's samples are: a fixed-width table and a file of JSON
/// lines beside `index.json` (see the [module docs](crate::shard) for the
/// files; [`SampleTable::columns`] for a row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleTable {
    /// The rows' file, relative to the index (`index.samples.bin`).
    pub rows: String,
    /// Bytes per row ([`ROW_BYTES`]).
    pub row_bytes: usize,
    /// A row's columns, in order, as a numpy structured dtype.
    pub columns: Vec<Column>,
    /// Dataset index of the first row; rows are consecutive samples.
    pub first: usize,
    /// Rows in the table.
    pub count: usize,
    /// The JSON lines' file, relative to the index (`index.meta.jsonl`).
    pub meta: String,
    /// Its size in bytes.
    pub meta_bytes: u64,
}

impl SampleTable {
    /// The columns of a row, in order: `index` `offset` `length`
    /// `meta_offset` (u64), `start` `end` (days since 1970-01-01, numpy
    /// `datetime64[D]`), `centroid` (2 × f64), `transform` (6 × f64),
    /// `shard` `crc32` `meta_length` `epsg` `steps` `failed` (u32; `steps`
    /// the number of days, `failed` 1 for a sample that failed to load).
    /// Little-endian, packed: [`ROW_BYTES`] bytes.
    ///
    /// ```
    /// use tilestack::shard::SampleTable;
    /// let cols = SampleTable::columns();
    /// assert_eq!(cols.len(), 14);
    /// assert_eq!(serde_json::to_string(&cols[6])?, r#"["centroid","<f8",[2]]"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn columns() -> Vec<Column> {
        let s = |n: &str, t: &str| Column::Scalar(n.into(), t.into());
        vec![
            s("index", "<u8"),
            s("offset", "<u8"),
            s("length", "<u8"),
            s("meta_offset", "<u8"),
            s("start", "<M8[D]"),
            s("end", "<M8[D]"),
            Column::Array("centroid".into(), "<f8".into(), [2]),
            Column::Array("transform".into(), "<f8".into(), [6]),
            s("shard", "<u4"),
            s("crc32", "<u4"),
            s("meta_length", "<u4"),
            s("epsg", "<u4"),
            s("steps", "<u4"),
            s("failed", "<u4"),
        ]
    }

    /// An empty table whose files are named after `stem` (`index`, or a
    /// part's `index-I-of-N`), starting at sample `first`.
    pub(crate) fn empty(stem: &str, first: usize) -> SampleTable {
        SampleTable {
            rows: format!("{stem}.samples.bin"),
            row_bytes: ROW_BYTES,
            columns: SampleTable::columns(),
            first,
            count: 0,
            meta: format!("{stem}.meta.jsonl"),
            meta_bytes: 0,
        }
    }
}

/// `index.json` (or one part's `index-I-of-N.json`): the dataset, its
/// shards, and where its samples' table is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// [`INDEX_FORMAT`].
    pub format: String,
    /// The tilestack version that wrote it.
    pub tilestack_version: String,
    /// The dataset's name.
    pub name: String,
    /// SHA-256 of what determines the samples (see [`config_hash`](crate::shard::config_hash)).
    pub config_hash: String,
    /// The config the shards were written from.
    pub config: DatasetConfig,
    /// Samples in the dataset (all parts).
    pub samples: usize,
    /// `[T, C, H, W]` of every sample.
    pub shape: [usize; 4],
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// Label layer names.
    pub labels: Vec<String>,
    /// Input mask names.
    pub masks: Vec<String>,
    /// Samples per shard (the last shard may hold fewer).
    pub samples_per_shard: usize,
    /// Shards in the dataset (all parts).
    pub shard_count: usize,
    /// Candidates the sampler produced, and those the filters dropped, by reason.
    pub candidates: usize,
    /// Samples dropped before materializing, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// `[I, N]` for one part's index; absent in a whole index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<[usize; 2]>,
    /// The shards it covers.
    pub shards: Vec<ShardInfo>,
    /// The samples it covers: their table.
    pub table: SampleTable,
    /// The inputs after the first, in config order (absent for one input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputLayout>,
}

/// `index.json` before the table ([`INDEX_FORMAT_V1`]): the same header
/// with every entry inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IndexV1 {
    format: String,
    tilestack_version: String,
    name: String,
    config_hash: String,
    config: DatasetConfig,
    samples: usize,
    shape: [usize; 4],
    bands: Vec<String>,
    labels: Vec<String>,
    masks: Vec<String>,
    samples_per_shard: usize,
    shard_count: usize,
    candidates: usize,
    dropped: BTreeMap<String, usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<[usize; 2]>,
    shards: Vec<ShardInfo>,
    entries: Vec<SampleEntry>,
}

/// Only the format, to choose the parser.
#[derive(Deserialize)]
struct Probe {
    format: String,
}

/// Shard `k`'s file name.
pub(crate) fn shard_file(k: usize) -> String {
    format!("shard-{k:05}.safetensors")
}

/// Part `i` of `n`'s index files' stem (`index-I-of-N`).
pub(crate) fn part_stem(i: usize, n: usize) -> String {
    format!("index-{i}-of-{n}")
}

/// Part `i` of `n`'s index file name.
pub(crate) fn part_index_file(i: usize, n: usize) -> String {
    format!("{}.json", part_stem(i, n))
}

/// The shards part `i` of `n` writes, of `k` in all.
pub(crate) fn part_shards(i: usize, n: usize, k: usize) -> std::ops::Range<usize> {
    (i * k / n)..((i + 1) * k / n)
}

impl ShardIndex {
    /// Bytes of one loaded sample's region: the stack's, its layers' and
    /// every other input's ([`InputLayout::region_bytes`]); `None` when a
    /// (hostile) shape overflows.
    pub fn region_bytes(&self) -> Option<u64> {
        self.inputs
            .iter()
            .try_fold(self.layout().region_bytes()?, |n, i| {
                n.checked_add(i.region_bytes()?)
            })
    }

    /// The layout of the samples it indexes.
    pub fn layout(&self) -> SampleLayout {
        SampleLayout {
            shape: self.shape,
            bands: self.bands.clone(),
            labels: self.labels.clone(),
            masks: self.masks.clone(),
        }
    }

    /// An index header from the JSON of an `index.json` (or a part's),
    /// checked as [`ShardSet::open`](crate::shard::ShardSet::open) checks
    /// it before reading its table: format, shards, the table's layout.
    /// `name` names the file in errors.
    ///
    /// ```
    /// let e = tilestack::shard::ShardIndex::from_json(b"{}", "index.json").unwrap_err();
    /// assert!(e.to_string().contains("index.json"));
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `name` and what is wrong (the JSON parser's
    /// error as its source when it is not an index at all); an index of
    /// [`INDEX_FORMAT_V1`] is refused here (its entries are inline: open
    /// it with [`ShardSet::open`](crate::shard::ShardSet::open)).
    pub fn from_json(bytes: &[u8], name: &str) -> Result<ShardIndex> {
        match parse_any(bytes, name)? {
            Parsed::V2(index) => Ok(*index),
            Parsed::V1(_) => Err(Error::invalid(
                "shard index",
                format!(
                    "{name}: format {INDEX_FORMAT_V1:?} (entries inline): ShardSet::open still reads \
                     it; rerun `tilestack materialize` on the folder to rewrite it as {INDEX_FORMAT:?}"
                ),
            )),
        }
    }
}

enum Parsed {
    V1(Box<IndexV1>),
    V2(Box<ShardIndex>),
}

fn not_an_index(name: &str, e: serde_json::Error) -> Error {
    Error::invalid_because(
        "shard index",
        format!("{name}: not a tilestack shard index"),
        e,
    )
}

/// An index of either format from its JSON; a v2 header checked.
fn parse_any(bytes: &[u8], name: &str) -> Result<Parsed> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| not_an_index(name, e))?;
    match probe.format.as_str() {
        INDEX_FORMAT => {
            let index: ShardIndex =
                serde_json::from_slice(bytes).map_err(|e| not_an_index(name, e))?;
            check_header(&index, name)?;
            Ok(Parsed::V2(Box::new(index)))
        }
        INDEX_FORMAT_V1 => {
            let index: IndexV1 =
                serde_json::from_slice(bytes).map_err(|e| not_an_index(name, e))?;
            check_v1(&index, name)?;
            Ok(Parsed::V1(Box::new(index)))
        }
        other => Err(Error::invalid(
            "shard index",
            format!(
                "{name}: format {other:?}, this tilestack reads {INDEX_FORMAT:?} and \
                 {INDEX_FORMAT_V1:?}: open it with the tilestack that wrote it, or materialize again"
            ),
        )),
    }
}

fn bad(name: &str, m: impl std::fmt::Display) -> Error {
    Error::invalid("shard index", format!("{name}: {m}"))
}

/// A v2 header's own consistency: shards listed once each, the table's
/// layout this tilestack's, its range inside the dataset.
fn check_header(index: &ShardIndex, name: &str) -> Result<()> {
    if index.shards.len() != index.shard_count && index.part.is_none() {
        return Err(bad(
            name,
            format!(
                "field `shards`: {} listed of {}",
                index.shards.len(),
                index.shard_count
            ),
        ));
    }
    for (j, s) in index.shards.iter().enumerate() {
        if s.shard >= index.shard_count || (j > 0 && index.shards[j - 1].shard >= s.shard) {
            return Err(bad(
                name,
                format!(
                    "field `shards`: shard {} listed out of order or outside 0..{}",
                    s.shard, index.shard_count
                ),
            ));
        }
    }
    index
        .region_bytes()
        .ok_or_else(|| bad(name, format!("field `shape`: {:?} overflows", index.shape)))?;
    let t = &index.table;
    if t.row_bytes != ROW_BYTES || t.columns != SampleTable::columns() {
        return Err(bad(
            name,
            format!(
                "field `table`: rows of {} bytes in columns {:?}; this tilestack reads rows of \
                 {ROW_BYTES} bytes in {:?}",
                t.row_bytes,
                t.columns,
                SampleTable::columns()
            ),
        ));
    }
    if t.first
        .checked_add(t.count)
        .is_none_or(|e| e > index.samples)
    {
        return Err(bad(
            name,
            format!(
                "field `table`: rows {}+{} outside the dataset's {} samples",
                t.first, t.count, index.samples
            ),
        ));
    }
    if index.part.is_none() && (t.first, t.count) != (0, index.samples) {
        return Err(bad(
            name,
            format!(
                "field `table`: {} rows from {} for {} samples",
                t.count, t.first, index.samples
            ),
        ));
    }
    for f in [&t.rows, &t.meta] {
        if f.is_empty() || f.contains('/') || f.contains('\\') || f.starts_with('.') {
            return Err(bad(
                name,
                format!("field `table`: {f:?} is not a file name beside the index"),
            ));
        }
    }
    Ok(())
}

/// A v1 index: entries complete, in order, each region the size the
/// shape says.
fn check_v1(index: &IndexV1, name: &str) -> Result<()> {
    if index.entries.len() != index.samples {
        return Err(bad(
            name,
            format!(
                "{} entries for {} samples",
                index.entries.len(),
                index.samples
            ),
        ));
    }
    if index.shards.len() != index.shard_count {
        return Err(bad(
            name,
            format!(
                "{} shards listed of {}",
                index.shards.len(),
                index.shard_count
            ),
        ));
    }
    let layout = SampleLayout {
        shape: index.shape,
        bands: index.bands.clone(),
        labels: index.labels.clone(),
        masks: index.masks.clone(),
    };
    let want = layout
        .region_bytes()
        .ok_or_else(|| bad(name, format!("shape {:?} overflows", index.shape)))?;
    let sizes: std::collections::HashMap<usize, u64> =
        index.shards.iter().map(|s| (s.shard, s.bytes)).collect();
    for (i, e) in index.entries.iter().enumerate() {
        if e.index != i {
            return Err(bad(name, format!("entry {i} is sample {}", e.index)));
        }
        if e.shard >= index.shard_count {
            return Err(bad(
                name,
                format!("sample {i} in shard {} of {}", e.shard, index.shard_count),
            ));
        }
        let in_shard = sizes.get(&e.shard).is_some_and(|&bytes| {
            e.offset
                .checked_add(e.length)
                .is_some_and(|end| end <= bytes)
        });
        if e.error.is_none() && !in_shard {
            return Err(bad(
                name,
                format!(
                    "sample {i} (bytes {}+{}) lies outside shard {}",
                    e.offset, e.length, e.shard
                ),
            ));
        }
        if e.error.is_none() && e.length != want {
            return Err(bad(
                name,
                format!(
                    "sample {i} has {} bytes, its shape {:?} needs {want}",
                    e.length, index.shape
                ),
            ));
        }
    }
    Ok(())
}

/// The header's JSON, pretty, with a final newline.
pub(crate) fn index_json(index: &ShardIndex) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::internal_because("shard index", "cannot write it as JSON", e))?;
    v.push(b'\n');
    Ok(v)
}

// ---------------------------------------------------------------------------
// Rows and records

/// A row of the table, decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Row {
    pub(crate) index: u64,
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) meta_offset: u64,
    /// Days since 1970-01-01.
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) centroid: [f64; 2],
    pub(crate) transform: [f64; 6],
    pub(crate) shard: u32,
    pub(crate) crc32: u32,
    pub(crate) meta_length: u32,
    pub(crate) epsg: u32,
    pub(crate) steps: u32,
    pub(crate) failed: u32,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn day_number(d: NaiveDate) -> i64 {
    (d - epoch()).num_days()
}

fn day_of(n: i64) -> Option<NaiveDate> {
    epoch().checked_add_signed(chrono::TimeDelta::try_days(n)?)
}

impl Row {
    pub(crate) fn encode(&self) -> [u8; ROW_BYTES] {
        let mut b = [0u8; ROW_BYTES];
        let mut at = 0;
        let mut put = |x: &[u8]| {
            b[at..at + x.len()].copy_from_slice(x);
            at += x.len();
        };
        put(&self.index.to_le_bytes());
        put(&self.offset.to_le_bytes());
        put(&self.length.to_le_bytes());
        put(&self.meta_offset.to_le_bytes());
        put(&self.start.to_le_bytes());
        put(&self.end.to_le_bytes());
        for v in self.centroid.iter().chain(&self.transform) {
            put(&v.to_le_bytes());
        }
        for v in [
            self.shard,
            self.crc32,
            self.meta_length,
            self.epsg,
            self.steps,
            self.failed,
        ] {
            put(&v.to_le_bytes());
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Row {
        // Callers pass ROW_BYTES-long slices (chunks_exact); a shorter one
        // reads as zeros rather than panicking.
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            if let Some(s) = b.get(i..i + 8) {
                x.copy_from_slice(s);
            }
            u64::from_le_bytes(x)
        };
        let u32_at = |i: usize| {
            let mut x = [0u8; 4];
            if let Some(s) = b.get(i..i + 4) {
                x.copy_from_slice(s);
            }
            u32::from_le_bytes(x)
        };
        let f64_at = |i: usize| f64::from_bits(u64_at(i));
        Row {
            index: u64_at(0),
            offset: u64_at(8),
            length: u64_at(16),
            meta_offset: u64_at(24),
            start: u64_at(32) as i64,
            end: u64_at(40) as i64,
            centroid: [f64_at(48), f64_at(56)],
            transform: std::array::from_fn(|k| f64_at(64 + 8 * k)),
            shard: u32_at(112),
            crc32: u32_at(116),
            meta_length: u32_at(120),
            epsg: u32_at(124),
            steps: u32_at(128),
            failed: u32_at(132),
        }
    }
}

/// A sample's variable-length fields: its line in `index.meta.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) days: Vec<NaiveDate>,
    pub(crate) eo_cloud_cover: Vec<Option<f32>>,
    pub(crate) pct_nans: Vec<Option<f32>>,
    pub(crate) tile_cloud_fraction: Vec<Option<f32>>,
    pub(crate) items: Vec<Vec<String>>,
    pub(crate) read_errors: Vec<String>,
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) inputs: Vec<InputEntry>,
}

/// [`Meta`] borrowed from an entry, to write it without copies.
#[derive(Serialize)]
struct MetaRef<'a> {
    id: &'a str,
    days: &'a [NaiveDate],
    eo_cloud_cover: &'a [Option<f32>],
    pct_nans: &'a [Option<f32>],
    tile_cloud_fraction: &'a [Option<f32>],
    items: &'a [Vec<String>],
    read_errors: &'a [String],
    error: &'a Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    inputs: &'a [InputEntry],
}

impl<'a> From<&'a SampleEntry> for MetaRef<'a> {
    fn from(e: &'a SampleEntry) -> MetaRef<'a> {
        MetaRef {
            id: &e.id,
            days: &e.days,
            eo_cloud_cover: &e.eo_cloud_cover,
            pct_nans: &e.pct_nans,
            tile_cloud_fraction: &e.tile_cloud_fraction,
            items: &e.items,
            read_errors: &e.read_errors,
            error: &e.error,
            inputs: &e.inputs,
        }
    }
}

/// The entry a row and its record make.
pub(crate) fn entry_from(row: &Row, meta: Meta, name: &str) -> Result<SampleEntry> {
    let date = |n: i64, col: &str| {
        day_of(n).ok_or_else(|| {
            bad(
                name,
                format!("sample {}: column `{col}` is day {n}", row.index),
            )
        })
    };
    Ok(SampleEntry {
        index: usize::try_from(row.index)
            .map_err(|_| bad(name, format!("column `index` is {}", row.index)))?,
        id: meta.id,
        shard: row.shard as usize,
        offset: row.offset,
        length: row.length,
        crc32: row.crc32,
        centroid: row.centroid,
        start: date(row.start, "start")?,
        end: date(row.end, "end")?,
        days: meta.days,
        epsg: row.epsg,
        transform: row.transform,
        eo_cloud_cover: meta.eo_cloud_cover,
        pct_nans: meta.pct_nans,
        tile_cloud_fraction: meta.tile_cloud_fraction,
        items: meta.items,
        read_errors: meta.read_errors,
        error: meta.error,
        inputs: meta.inputs,
    })
}

/// Writes a table: rows and JSON lines, streaming (nothing held but a
/// write buffer).
pub(crate) struct TableWriter {
    table: SampleTable,
    rows: FileWriter,
    meta: FileWriter,
    line: Vec<u8>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .finish()
    }
}

impl TableWriter {
    /// A table named after `stem` (see [`SampleTable`]) whose first row is sample `first`.
    pub(crate) fn create(loc: &Location, stem: &str, first: usize) -> Result<TableWriter> {
        let table = SampleTable::empty(stem, first);
        Ok(TableWriter {
            rows: loc.writer(&table.rows)?,
            meta: loc.writer(&table.meta)?,
            table,
            line: Vec::new(),
        })
    }

    /// Appends the next sample (its index must be the next row's).
    pub(crate) async fn push(&mut self, e: &SampleEntry) -> Result<()> {
        let want = self.table.first + self.table.count;
        if e.index != want {
            return Err(Error::internal(
                "shard index",
                format!(
                    "{}: sample {} written as row for sample {want}",
                    self.table.rows, e.index
                ),
            ));
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, &MetaRef::from(e)).map_err(|x| {
            Error::internal_because("shard index", "cannot write a sample as JSON", x)
        })?;
        let meta_length = u32::try_from(self.line.len())
            .ok()
            .filter(|&n| n <= MAX_META_RECORD)
            .ok_or_else(|| {
                Error::invalid(
                    "shard index",
                    format!(
                        "sample {} ({}): its record is {} bytes (more than {MAX_META_RECORD})",
                        e.index,
                        e.id,
                        self.line.len()
                    ),
                )
            })?;
        let row = Row {
            index: e.index as u64,
            offset: e.offset,
            length: e.length,
            meta_offset: self.meta.len(),
            start: day_number(e.start),
            end: day_number(e.end),
            centroid: e.centroid,
            transform: e.transform,
            shard: u32::try_from(e.shard).map_err(|_| {
                Error::internal("shard index", format!("shard {} over u32", e.shard))
            })?,
            crc32: e.crc32,
            meta_length,
            epsg: e.epsg,
            steps: u32::try_from(e.days.len()).unwrap_or(u32::MAX),
            failed: u32::from(e.error.is_some()),
        };
        self.line.push(b'\n');
        self.meta.write(&self.line).await?;
        self.rows.write(&row.encode()).await?;
        self.table.count += 1;
        Ok(())
    }

    /// Appends a row copied from another table whose JSON lines were (or
    /// will be) appended at `meta_base`.
    async fn push_row(&mut self, mut row: Row, meta_base: u64) -> Result<()> {
        row.meta_offset += meta_base;
        self.rows.write(&row.encode()).await?;
        self.table.count += 1;
        Ok(())
    }

    /// Finishes both files (renamed into place, or uploaded): the table.
    pub(crate) async fn finish(self) -> Result<SampleTable> {
        let mut table = self.table;
        self.rows.finish().await?;
        table.meta_bytes = self.meta.finish().await?;
        Ok(table)
    }
}

/// Writes `index` (its table first, then the header `{stem}.json`) for
/// `entries`, which must be the table's samples in order from `first`.
pub(crate) async fn write_index_at(
    loc: &Location,
    stem: &str,
    mut index: ShardIndex,
    first: usize,
    entries: impl IntoIterator<Item = SampleEntry>,
) -> Result<ShardIndex> {
    let mut w = TableWriter::create(loc, stem, first)?;
    for e in entries {
        w.push(&e).await?;
    }
    index.table = w.finish().await?;
    index.format = INDEX_FORMAT.into();
    loc.put(
        &format!("{stem}.json"),
        vec![Bytes::from(index_json(&index)?)],
    )
    .await?;
    Ok(index)
}

/// Writes `index.json` and its table at `out` (a folder or object-store
/// prefix, through `client` with its registered stores, or a default one)
/// from `entries`: every sample of `header`'s dataset, in order.
/// What [`materialize`](crate::shard::materialize()) writes; for tools that
/// write shards themselves, and for benches of the index alone.
/// `header.table` is replaced by the table written; the header is returned.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let cfg = tilestack::DatasetConfig::from_toml_str(
/// #     "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\n[time]\nrange = \"2019-08-01/2019-08-05\"\n\
/// #      [sampler]\nkind = \"random\"\nbbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n",
/// #     "a.toml".as_ref())?;
/// use tilestack::shard::{SampleEntry, ShardIndex, write_index};
/// let mut header = ShardIndex::empty(&cfg, [1, 1, 2, 2], 1);
/// header.samples = 1;
/// let failed = SampleEntry { error: Some("no scene".into()), ..SampleEntry::default() };
/// let index = write_index(&dir.path().to_string_lossy(), None, header, [failed])?;
/// assert_eq!((index.table.count, index.table.rows.as_str()), (1, "index.samples.bin"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written;
/// [`Error::Internal`] when an entry is out of order or the runtime
/// cannot start.
pub fn write_index(
    out: &str,
    client: Option<crate::fetch::HttpRangeClient>,
    header: ShardIndex,
    entries: impl IntoIterator<Item = SampleEntry>,
) -> Result<ShardIndex> {
    let rt = crate::runtime::own_runtime("write_index", "tilestack-index", Some(1))?;
    let loc = Location::parse(out, client)?;
    let samples = header.samples;
    let index = rt.block_on(async {
        loc.create().await?;
        write_index_at(&loc, "index", header, 0, entries).await
    })?;
    if index.table.count != samples {
        return Err(Error::invalid(
            "shard index",
            format!(
                "{}: {} entries written for the header's {samples} samples",
                loc.name("index.json"),
                index.table.count
            ),
        ));
    }
    Ok(index)
}

/// Writes `index.json` at `out` in the format before the table
/// ([`INDEX_FORMAT_V1`], every entry inline): what tilestack 0.1 wrote,
/// for tests of the reader's compatibility and benches against it.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_index_v1(out: &str, header: &ShardIndex, entries: Vec<SampleEntry>) -> Result<()> {
    let h = header.clone();
    let v1 = IndexV1 {
        format: INDEX_FORMAT_V1.into(),
        tilestack_version: h.tilestack_version,
        name: h.name,
        config_hash: h.config_hash,
        config: h.config,
        samples: h.samples,
        shape: h.shape,
        bands: h.bands,
        labels: h.labels,
        masks: h.masks,
        samples_per_shard: h.samples_per_shard,
        shard_count: h.shard_count,
        candidates: h.candidates,
        dropped: h.dropped,
        part: h.part,
        shards: h.shards,
        entries,
    };
    let mut v = serde_json::to_vec_pretty(&v1)
        .map_err(|e| Error::internal_because("shard index", "cannot write it as JSON", e))?;
    v.push(b'\n');
    let p = std::path::Path::new(out).join("index.json");
    std::fs::write(&p, v).map_err(|e| Error::io(&p, e))
}

impl ShardIndex {
    /// A header for `cfg`'s samples of `shape`, `samples_per_shard` to a
    /// shard, without shards or table (what [`write_index`] fills in).
    /// Band names come from the config; no label or mask.
    ///
    /// ```
    /// # let cfg = tilestack::DatasetConfig::from_toml_str(
    /// #     "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\n[time]\nrange = \"2019-08-01/2019-08-05\"\n\
    /// #      [sampler]\nkind = \"random\"\nbbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n",
    /// #     "a.toml".as_ref())?;
    /// let h = tilestack::shard::ShardIndex::empty(&cfg, [5, 1, 32, 32], 8);
    /// assert_eq!((h.samples, h.shard_count, h.bands.len()), (0, 0, 1));
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    pub fn empty(cfg: &DatasetConfig, shape: [usize; 4], samples_per_shard: usize) -> ShardIndex {
        ShardIndex {
            format: INDEX_FORMAT.into(),
            tilestack_version: env!("CARGO_PKG_VERSION").into(),
            name: cfg.name.clone(),
            config_hash: crate::shard::config_hash(cfg),
            config: cfg.clone(),
            samples: 0,
            shape,
            bands: cfg
                .stack
                .fields()
                .bands
                .iter()
                .map(|b| b.to_string())
                .collect(),
            labels: Vec::new(),
            masks: Vec::new(),
            samples_per_shard,
            shard_count: 0,
            candidates: 0,
            dropped: BTreeMap::new(),
            part: None,
            shards: Vec::new(),
            table: SampleTable::empty("index", 0),
            inputs: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading

/// Where a table's bytes are: a file beside the index, or (an index of
/// [`INDEX_FORMAT_V1`], converted) memory.
#[derive(Debug)]
pub(crate) enum Store {
    File(String),
    Memory(Arc<Vec<u8>>),
}

impl Store {
    pub(crate) fn name(&self, loc: &Location, index_name: &str) -> String {
        match self {
            Store::File(f) => loc.name(f),
            Store::Memory(_) => format!("{index_name} (converted in memory)"),
        }
    }

    /// Bytes `[offset, offset + out.len())` into `out`.
    pub(crate) async fn read(
        &self,
        loc: &Location,
        offset: u64,
        out: &mut [u8],
        name: &str,
    ) -> Result<()> {
        match self {
            Store::File(f) => loc.read_into(f, offset, out).await,
            Store::Memory(b) => {
                let s = usize::try_from(offset)
                    .ok()
                    .and_then(|o| b.get(o..o.checked_add(out.len())?))
                    .ok_or_else(|| {
                        bad(
                            name,
                            format!("bytes {offset}+{} outside the table", out.len()),
                        )
                    })?;
                out.copy_from_slice(s);
                Ok(())
            }
        }
    }
}

/// One table of an opened index.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) rows: Store,
    pub(crate) meta: Store,
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) meta_bytes: u64,
}

/// What the reader holds per sample (~90 bytes): enough to read and check
/// its region and build its grid; the rest is read on demand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) offset: u64,
    pub(crate) meta_offset: u64,
    pub(crate) transform: [f64; 6],
    pub(crate) shard: u32,
    pub(crate) crc32: u32,
    pub(crate) meta_length: u32,
    pub(crate) epsg: u32,
    /// Which of the index's tables holds its row and record.
    pub(crate) table: u16,
    pub(crate) failed: bool,
}

/// An index opened: its header, its tables, a slot per sample.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) header: ShardIndex,
    pub(crate) tables: Vec<Table>,
    pub(crate) slots: Vec<Slot>,
    /// The index file (or the parts'), for messages.
    pub(crate) name: String,
}

/// What every row is checked against.
struct Expect<'a> {
    region: u64,
    /// Shard sizes by number (`None`: not listed).
    sizes: &'a [Option<u64>],
}

/// Reads table `ti`'s rows into `slots`, `ROWS_PER_READ` at a time,
/// checking each: its index, shard, region and record in bounds.
async fn read_slots(
    loc: &Location,
    t: &Table,
    ti: u16,
    expect: &Expect<'_>,
    index_name: &str,
    slots: &mut Vec<Slot>,
) -> Result<()> {
    let name = t.rows.name(loc, index_name);
    if let (Store::File(f), true) = (&t.rows, loc.is_local()) {
        let want = (t.count as u64).checked_mul(ROW_BYTES as u64);
        let have = loc.size(f).await?;
        if have.is_none() || have != want {
            return Err(Error::invalid(
                "shard index",
                format!(
                    "{name}: {} bytes, {index_name} says {} rows of {ROW_BYTES} bytes: the table \
                     is truncated or replaced; rerun materialize (or --merge)",
                    have.map_or("no file, 0".into(), |n| n.to_string()),
                    t.count
                ),
            ));
        }
    }
    if let (Store::File(f), true) = (&t.meta, loc.is_local()) {
        let have = loc.size(f).await?;
        if have != Some(t.meta_bytes) {
            return Err(Error::invalid(
                "shard index",
                format!(
                    "{}: {} bytes, {index_name} says {}: the table is truncated or replaced; \
                     rerun materialize (or --merge)",
                    loc.name(f),
                    have.map_or("no file, 0".into(), |n| n.to_string()),
                    t.meta_bytes
                ),
            ));
        }
    }
    let mut buf = Vec::new();
    let mut r = 0usize;
    while r < t.count {
        let n = (t.count - r).min(ROWS_PER_READ);
        buf.resize(n * ROW_BYTES, 0);
        t.rows
            .read(loc, (r * ROW_BYTES) as u64, &mut buf, &name)
            .await?;
        for (j, b) in buf.chunks_exact(ROW_BYTES).enumerate() {
            let row = Row::decode(b);
            let at = r + j;
            slots.push(check_row(&row, t, at, ti, expect, &name)?);
        }
        r += n;
    }
    Ok(())
}

fn check_row(
    row: &Row,
    t: &Table,
    at: usize,
    ti: u16,
    expect: &Expect<'_>,
    name: &str,
) -> Result<Slot> {
    let sample = t.first + at;
    let col = |c: &str, m: String| {
        bad(
            name,
            format!("row {at} (sample {sample}): column `{c}` {m}"),
        )
    };
    if row.index != sample as u64 {
        return Err(col("index", format!("is {}", row.index)));
    }
    if row.failed > 1 {
        return Err(col("failed", format!("is {}, not 0 or 1", row.failed)));
    }
    let failed = row.failed == 1;
    let size = expect.sizes.get(row.shard as usize).copied();
    let Some(size) = size else {
        return Err(col(
            "shard",
            format!("is {}, of {}", row.shard, expect.sizes.len()),
        ));
    };
    if !failed {
        if row.length != expect.region {
            return Err(col(
                "length",
                format!("is {}, the shape needs {}", row.length, expect.region),
            ));
        }
        let inside = size.is_some_and(|s| {
            row.offset
                .checked_add(row.length)
                .is_some_and(|end| end <= s)
        });
        if !inside {
            return Err(col(
                "offset",
                format!(
                    "{}+{} lies outside shard {} ({} bytes)",
                    row.offset,
                    row.length,
                    row.shard,
                    size.map_or("not listed".into(), |s| s.to_string())
                ),
            ));
        }
    }
    if row.meta_length > MAX_META_RECORD
        || row
            .meta_offset
            .checked_add(u64::from(row.meta_length))
            .is_none_or(|end| end > t.meta_bytes)
    {
        return Err(col(
            "meta_offset",
            format!(
                "{}+{} lies past the {}-byte record file",
                row.meta_offset, row.meta_length, t.meta_bytes
            ),
        ));
    }
    Ok(Slot {
        offset: row.offset,
        meta_offset: row.meta_offset,
        transform: row.transform,
        shard: row.shard,
        crc32: row.crc32,
        meta_length: row.meta_length,
        epsg: row.epsg,
        table: ti,
        failed,
    })
}

/// Shard sizes by number, from a header's list (checked: in range).
fn sizes_of(index: &ShardIndex) -> Vec<Option<u64>> {
    // Checked headers list every shard once, in order (parts merged): as
    // many as `shard_count`, so no longer than the JSON that lists them.
    let mut sizes = vec![None; index.shard_count.min(index.shards.len())];
    for s in &index.shards {
        if let Some(x) = sizes.get_mut(s.shard) {
            *x = Some(s.bytes);
        }
    }
    sizes
}

/// An index (header and slots) from its `index.json` at `loc`: the
/// table's file, or a v1 index converted in memory; in a local folder
/// without one, the parts' tables when every part of one count `N` is there.
pub(crate) async fn open(loc: &Location) -> Result<Opened> {
    let name = loc.name("index.json");
    match loc.read_all("index.json").await? {
        Some(bytes) => match parse_any(&bytes, &name)? {
            Parsed::V2(header) => open_tables(loc, *header, Vec::new(), name).await,
            Parsed::V1(v1) => {
                drop(bytes);
                tracing::warn!(
                    index = %name,
                    "an index of format {INDEX_FORMAT_V1} is read whole into memory; rerun \
                     materialize on the folder to rewrite it as {INDEX_FORMAT} (no sample is loaded again)"
                );
                let (header, table) = convert_v1(*v1)?;
                open_tables(loc, header, vec![table], name).await
            }
        },
        None => {
            if loc.is_local()
                && let Some((header, tables, name)) = local_parts(loc).await?
            {
                return open_tables(loc, header, tables, name).await;
            }
            Err(Error::invalid(
                "shards",
                format!(
                    "{name} not found: not a shard folder, or materialize has not \
                     finished (with parts: run `tilestack materialize --merge`)"
                ),
            ))
        }
    }
}

/// Slots from `tables` (the header's own table when empty).
async fn open_tables(
    loc: &Location,
    header: ShardIndex,
    mut tables: Vec<Table>,
    name: String,
) -> Result<Opened> {
    if tables.is_empty() {
        let t = &header.table;
        tables.push(Table {
            rows: Store::File(t.rows.clone()),
            meta: Store::File(t.meta.clone()),
            first: t.first,
            count: t.count,
            meta_bytes: t.meta_bytes,
        });
    }
    let region = header.region_bytes().ok_or_else(|| {
        bad(
            &name,
            format!("field `shape`: {:?} overflows", header.shape),
        )
    })?;
    let sizes = sizes_of(&header);
    let expect = Expect {
        region,
        sizes: &sizes,
    };
    // Grown as rows are read (never sized from the header alone: a hostile
    // count allocates nothing the file does not hold).
    let mut slots = Vec::with_capacity(header.samples.min(1 << 20));
    for (ti, t) in tables.iter().enumerate() {
        let ti = u16::try_from(ti).map_err(|_| bad(&name, "more than 65535 parts"))?;
        if t.first != slots.len() {
            return Err(bad(
                &name,
                format!(
                    "table {ti} starts at sample {}, the one before ends at {}",
                    t.first,
                    slots.len()
                ),
            ));
        }
        read_slots(loc, t, ti, &expect, &name, &mut slots).await?;
    }
    if slots.len() != header.samples {
        return Err(bad(
            &name,
            format!("{} rows for {} samples", slots.len(), header.samples),
        ));
    }
    Ok(Opened {
        header,
        tables,
        slots,
        name,
    })
}

/// A v1 index as a header and an in-memory table.
fn convert_v1(v1: IndexV1) -> Result<(ShardIndex, Table)> {
    let IndexV1 {
        tilestack_version,
        name,
        config_hash,
        config,
        samples,
        shape,
        bands,
        labels,
        masks,
        samples_per_shard,
        shard_count,
        candidates,
        dropped,
        part,
        shards,
        entries,
        ..
    } = v1;
    let mut rows = Vec::with_capacity(entries.len() * ROW_BYTES);
    let mut meta = Vec::new();
    let mut line = Vec::new();
    for e in &entries {
        line.clear();
        serde_json::to_writer(&mut line, &MetaRef::from(e))
            .map_err(|x| Error::internal_because("shard index", "cannot convert an entry", x))?;
        let row = Row {
            index: e.index as u64,
            offset: e.offset,
            length: e.length,
            meta_offset: meta.len() as u64,
            start: day_number(e.start),
            end: day_number(e.end),
            centroid: e.centroid,
            transform: e.transform,
            shard: u32::try_from(e.shard).unwrap_or(u32::MAX),
            crc32: e.crc32,
            meta_length: u32::try_from(line.len()).unwrap_or(u32::MAX),
            epsg: e.epsg,
            steps: u32::try_from(e.days.len()).unwrap_or(u32::MAX),
            failed: u32::from(e.error.is_some()),
        };
        meta.extend_from_slice(&line);
        meta.push(b'\n');
        rows.extend_from_slice(&row.encode());
    }
    let count = entries.len();
    drop(entries);
    let mut table = SampleTable::empty("index", 0);
    table.count = count;
    table.meta_bytes = meta.len() as u64;
    let header = ShardIndex {
        format: INDEX_FORMAT_V1.into(),
        tilestack_version,
        name,
        config_hash,
        config,
        samples,
        shape,
        bands,
        labels,
        masks,
        samples_per_shard,
        shard_count,
        candidates,
        dropped,
        part,
        shards,
        table,
        inputs: Vec::new(),
    };
    let t = Table {
        rows: Store::Memory(Arc::new(rows)),
        meta_bytes: meta.len() as u64,
        meta: Store::Memory(Arc::new(meta)),
        first: 0,
        count,
    };
    Ok((header, t))
}

/// Sample `i`'s record from its table.
pub(crate) async fn read_meta(
    loc: &Location,
    tables: &[Table],
    slot: &Slot,
    sample: usize,
    index_name: &str,
) -> Result<Meta> {
    let t = tables
        .get(usize::from(slot.table))
        .ok_or_else(|| Error::internal("shard index", "slot of no table"))?;
    let name = t.meta.name(loc, index_name);
    let mut b = vec![0u8; slot.meta_length as usize];
    t.meta.read(loc, slot.meta_offset, &mut b, &name).await?;
    serde_json::from_slice(&b).map_err(|e| {
        Error::invalid_because(
            "shard index",
            format!(
                "{name}: sample {sample}'s record (bytes {}+{}) is not a sample's JSON",
                slot.meta_offset, slot.meta_length
            ),
            e,
        )
    })
}

/// Sample `i`'s whole entry: its row and its record.
pub(crate) async fn read_entry(
    loc: &Location,
    tables: &[Table],
    slot: &Slot,
    sample: usize,
    index_name: &str,
) -> Result<SampleEntry> {
    let t = tables
        .get(usize::from(slot.table))
        .ok_or_else(|| Error::internal("shard index", "slot of no table"))?;
    let name = t.rows.name(loc, index_name);
    let mut b = [0u8; ROW_BYTES];
    let at = sample
        .checked_sub(t.first)
        .ok_or_else(|| Error::internal("shard index", "sample before its table"))?;
    t.rows
        .read(loc, (at * ROW_BYTES) as u64, &mut b, &name)
        .await?;
    let row = Row::decode(&b);
    let meta = read_meta(loc, tables, slot, sample, index_name).await?;
    entry_from(&row, meta, &name)
}

// ---------------------------------------------------------------------------
// Parts

/// Parts `0..n`'s headers; `None` when one is missing.
pub(crate) async fn read_part_headers(loc: &Location, n: usize) -> Result<Option<Vec<ShardIndex>>> {
    let mut parts = Vec::with_capacity(n.min(1 << 16));
    for i in 0..n {
        let f = part_index_file(i, n);
        match loc.read_all(&f).await? {
            Some(b) => {
                let name = loc.name(&f);
                match parse_any(&b, &name)? {
                    Parsed::V2(h) => parts.push(*h),
                    Parsed::V1(_) => {
                        return Err(bad(
                            &name,
                            format!(
                                "a part of format {INDEX_FORMAT_V1:?}: rerun that part with this \
                                 tilestack (its shards are kept)"
                            ),
                        ));
                    }
                }
            }
            None => return Ok(None),
        }
    }
    Ok(Some(parts))
}

/// The header of the whole index that parts make, checked to be one
/// dataset and to cover it; rows consecutive from part to part.
fn merged_header(parts: &[ShardIndex], name: &str) -> Result<ShardIndex> {
    let Some(first) = parts.first() else {
        return Err(bad(name, "no part"));
    };
    let mut out = first.clone();
    out.part = None;
    out.shards.clear();
    let mut next = 0usize;
    let mut meta_bytes = 0u64;
    for (i, p) in parts.iter().enumerate() {
        if p.config_hash != out.config_hash
            || p.samples_per_shard != out.samples_per_shard
            || p.samples != out.samples
            || p.shard_count != out.shard_count
        {
            return Err(bad(
                name,
                format!(
                    "part {:?} is another dataset or layout (config hash {}, {} samples \
                     per shard; part 0: {}, {})",
                    p.part,
                    p.config_hash,
                    p.samples_per_shard,
                    out.config_hash,
                    out.samples_per_shard
                ),
            ));
        }
        if p.part != Some([i, parts.len()]) || p.table.first != next {
            return Err(bad(
                name,
                format!(
                    "part {i} of {} holds samples from {} (field `part` {:?}); the parts before end at {next}",
                    parts.len(),
                    p.table.first,
                    p.part
                ),
            ));
        }
        next += p.table.count;
        meta_bytes += p.table.meta_bytes;
        out.shards.extend(p.shards.iter().cloned());
    }
    if next != out.samples || out.shards.len() != out.shard_count {
        return Err(bad(
            name,
            format!(
                "the parts hold {next} of {} samples and {} of {} shards",
                out.samples,
                out.shards.len(),
                out.shard_count
            ),
        ));
    }
    let mut table = SampleTable::empty("index", 0);
    table.count = next;
    table.meta_bytes = meta_bytes;
    out.table = table;
    check_header(&out, name)?;
    Ok(out)
}

/// Writes `index.json` and its table from parts `0..n`, streaming: a
/// part's rows `ROWS_PER_READ` at a time (checked, `meta_offset` rebased),
/// its JSON lines in 8 MiB pieces. `None` when a part is missing.
pub(crate) async fn merge_at(loc: &Location, n: usize) -> Result<Option<ShardIndex>> {
    let Some(parts) = read_part_headers(loc, n).await? else {
        return Ok(None);
    };
    let name = loc.name("index.json");
    let header = merged_header(&parts, &name)?;
    let region = header
        .region_bytes()
        .ok_or_else(|| bad(&name, "shape overflows"))?;
    let sizes = sizes_of(&header);
    let expect = Expect {
        region,
        sizes: &sizes,
    };
    let mut w = TableWriter::create(loc, "index", 0)?;
    let mut meta_base = 0u64;
    let mut buf = Vec::new();
    for p in &parts {
        let t = Table {
            rows: Store::File(p.table.rows.clone()),
            meta: Store::File(p.table.meta.clone()),
            first: p.table.first,
            count: p.table.count,
            meta_bytes: p.table.meta_bytes,
        };
        let rows_name = loc.name(&p.table.rows);
        let mut r = 0usize;
        while r < t.count {
            let k = (t.count - r).min(ROWS_PER_READ);
            buf.resize(k * ROW_BYTES, 0);
            t.rows
                .read(loc, (r * ROW_BYTES) as u64, &mut buf, &rows_name)
                .await?;
            for (j, b) in buf.chunks_exact(ROW_BYTES).enumerate() {
                let row = Row::decode(b);
                check_row(&row, &t, r + j, 0, &expect, &rows_name)?;
                w.push_row(row, meta_base).await?;
            }
            r += k;
        }
        let mut at = 0u64;
        while at < t.meta_bytes {
            let k = (t.meta_bytes - at).min(8 << 20) as usize;
            buf.resize(k, 0);
            t.meta
                .read(loc, at, &mut buf, &loc.name(&p.table.meta))
                .await?;
            w.meta.write(&buf).await?;
            at += k as u64;
        }
        meta_base += t.meta_bytes;
    }
    let table = w.finish().await?;
    let mut header = header;
    header.table = table;
    loc.put("index.json", vec![Bytes::from(index_json(&header)?)])
        .await?;
    Ok(Some(header))
}

/// Writes `index.json` when every part's index is there; true when it did.
pub(crate) async fn try_merge(loc: &Location, n: usize) -> Result<bool> {
    Ok(merge_at(loc, n).await?.is_some())
}

/// The header and tables of a local folder's parts, when one count `N`
/// has all its parts there (what [`ShardSet`](crate::shard::read::ShardSet) reads when
/// `index.json` is missing): read in place, not merged.
async fn local_parts(loc: &Location) -> Result<Option<(ShardIndex, Vec<Table>, String)>> {
    let mut counts: Vec<usize> = loc
        .list_local()?
        .iter()
        .filter_map(|f| {
            let rest = f.strip_prefix("index-")?.strip_suffix(".json")?;
            let (_, n) = rest.split_once("-of-")?;
            n.parse().ok()
        })
        .collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        if let Some(parts) = read_part_headers(loc, n).await? {
            let name = format!(
                "{} (parts {})",
                loc.name("index.json"),
                part_index_file(0, n)
            );
            let header = merged_header(&parts, &name)?;
            let tables = parts
                .iter()
                .map(|p| Table {
                    rows: Store::File(p.table.rows.clone()),
                    meta: Store::File(p.table.meta.clone()),
                    first: p.table.first,
                    count: p.table.count,
                    meta_bytes: p.table.meta_bytes,
                })
                .collect();
            return Ok(Some((header, tables, name)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_and_cover_every_shard() {
        for k in [0, 1, 2, 5, 7, 100] {
            for n in 1..=6 {
                let mut all = Vec::new();
                for i in 0..n {
                    all.extend(part_shards(i, n, k));
                }
                assert_eq!(all, (0..k).collect::<Vec<_>>(), "k {k} n {n}");
            }
        }
    }

    #[test]
    fn rows_round_trip_and_the_columns_add_up_to_a_row() {
        let row = Row {
            index: 7,
            offset: 1 << 40,
            length: 12345,
            meta_offset: 99,
            start: day_number(NaiveDate::from_ymd_opt(2019, 8, 1).unwrap()),
            end: -3,
            centroid: [-122.3, 37.8],
            transform: [1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
            shard: 3,
            crc32: 0xdead_beef,
            meta_length: 400,
            epsg: 32610,
            steps: 30,
            failed: 1,
        };
        assert_eq!(Row::decode(&row.encode()), row);
        let bytes: usize = SampleTable::columns()
            .iter()
            .map(|c| match c {
                Column::Scalar(_, t) => t[2..3].parse::<usize>().unwrap_or(8),
                Column::Array(_, t, [n]) => t[2..3].parse::<usize>().unwrap() * n,
            })
            .sum();
        assert_eq!(bytes, ROW_BYTES);
        assert_eq!(day_of(row.start), NaiveDate::from_ymd_opt(2019, 8, 1));
        assert_eq!(day_of(i64::MAX), None);
    }
}
