//! Zarr metadata, v2 (`.zarray`, `.zattrs`, consolidated `.zmetadata`) and
//! v3 (`zarr.json`, with the `sharding_indexed` codec), parsed into typed
//! structs and checked: ranks, chunk grids that tile the shape, sizes under
//! the limits, data types and codecs this reader decodes. Pure: no I/O.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Most dimensions an array may declare.
pub const MAX_DIMS: usize = 32;
/// Most elements an array may declare (2^48: a 10980² granule × 2 million
/// slices): past it the metadata is taken as hostile.
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 48;
/// Most bytes one chunk (an inner chunk, for a sharded array) may decode to:
/// 256 MiB (an EOPF 10 m chunk is 1830² × 2 B = 6.7 MB).
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;
/// Most inner chunks one shard may hold (its index is 16 B each).
pub const MAX_SHARD_CHUNKS: u64 = 1 << 20;
/// Most bytes a metadata document (`.zmetadata`, `zarr.json`) may have.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// The error for a store's array: [`Error::Invalid`] naming both.
pub(crate) fn zarr_error(store: &str, array: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(
        "Zarr array",
        format!("store {store}, array {}: {message}", shown(array)),
    )
}

/// As [`zarr_error`], with the parser's or decoder's error as the source.
pub(crate) fn zarr_error_because(
    store: &str,
    array: &str,
    message: impl std::fmt::Display,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::invalid_because(
        "Zarr array",
        format!("store {store}, array {}: {message}", shown(array)),
        cause,
    )
}

fn shown(array: &str) -> &str {
    if array.is_empty() { "/" } else { array }
}

/// Which Zarr format a store's metadata is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZarrFormat {
    /// Zarr v2: `.zarray` + `.zattrs`, a `compressor`, chunk keys `i.j`.
    V2,
    /// Zarr v3: `zarr.json`, a codec pipeline, chunk keys `c/i/j`.
    V3,
}

/// Byte order of stored samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// The sample types this reader decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum DataType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    /// Bytes per sample.
    ///
    /// ```
    /// assert_eq!(tilestack::zarr::DataType::U16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
        }
    }

    /// The v3 name (`uint16`), also used in messages.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U8 => "uint8",
            DataType::I8 => "int8",
            DataType::U16 => "uint16",
            DataType::I16 => "int16",
            DataType::U32 => "uint32",
            DataType::I32 => "int32",
            DataType::U64 => "uint64",
            DataType::I64 => "int64",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
        }
    }

    fn from_v3(name: &str) -> Option<DataType> {
        Some(match name {
            "bool" => DataType::Bool,
            "uint8" => DataType::U8,
            "int8" => DataType::I8,
            "uint16" => DataType::U16,
            "int16" => DataType::I16,
            "uint32" => DataType::U32,
            "int32" => DataType::I32,
            "uint64" => DataType::U64,
            "int64" => DataType::I64,
            "float32" => DataType::F32,
            "float64" => DataType::F64,
            _ => return None,
        })
    }

    /// A v2 (NumPy) type string: `<u2`, `>f4`, `|u1`, `|b1`.
    fn from_v2(s: &str) -> Option<(DataType, Endian)> {
        let (order, kind) = (s.get(..1)?, s.get(1..)?);
        let endian = match order {
            "<" | "|" => Endian::Little,
            ">" => Endian::Big,
            _ => return None,
        };
        let t = match kind {
            "b1" => DataType::Bool,
            "u1" => DataType::U8,
            "i1" => DataType::I8,
            "u2" => DataType::U16,
            "i2" => DataType::I16,
            "u4" => DataType::U32,
            "i4" => DataType::I32,
            "u8" => DataType::U64,
            "i8" => DataType::I64,
            "f4" => DataType::F32,
            "f8" => DataType::F64,
            _ => return None,
        };
        Some((t, endian))
    }
}

/// A bytes-to-bytes codec (v3) or v2 compressor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BytesCodec {
    /// Blosc (its own header says compressor and shuffle).
    Blosc,
    /// Zstandard frames.
    Zstd,
    /// gzip (RFC 1952).
    Gzip,
    /// zlib (RFC 1950).
    Zlib,
    /// A CRC-32C checksum appended (4 bytes, little-endian).
    Crc32c,
}

impl BytesCodec {
    /// The codec's name as metadata writes it.
    pub fn name(&self) -> &'static str {
        match self {
            BytesCodec::Blosc => "blosc",
            BytesCodec::Zstd => "zstd",
            BytesCodec::Gzip => "gzip",
            BytesCodec::Zlib => "zlib",
            BytesCodec::Crc32c => "crc32c",
        }
    }
}

/// Where a shard keeps its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLocation {
    /// The first bytes of the shard.
    Start,
    /// The last bytes of the shard (the default).
    End,
}

/// The `sharding_indexed` codec: each stored object (a shard) holds a grid
/// of inner chunks and an index of `(offset, nbytes)` per inner chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Sharding {
    /// Inner chunk shape; divides the shard shape.
    pub chunk_shape: Vec<u64>,
    /// How each inner chunk is encoded.
    pub inner: Pipeline,
    /// Byte order of the index's u64 pairs.
    pub index_endian: Endian,
    /// Whether the index ends in a CRC-32C.
    pub index_crc32c: bool,
    /// Where the index is.
    pub index_location: IndexLocation,
}

impl Sharding {
    /// Inner chunks per shard, given the shard shape.
    pub fn chunks_per_shard(&self, shard: &[u64]) -> Vec<u64> {
        shard
            .iter()
            .zip(&self.chunk_shape)
            .map(|(s, c)| s / c.max(&1))
            .collect()
    }

    /// Bytes of a shard's index holding `n` entries.
    pub fn index_len(&self, n: u64) -> u64 {
        16 * n + if self.index_crc32c { 4 } else { 0 }
    }
}

/// How a stored chunk becomes samples: bytes-to-bytes codecs (applied in
/// order when writing, undone in reverse), then the samples' byte order; or
/// a shard of inner chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Byte order of the samples.
    pub endian: Endian,
    /// Bytes-to-bytes codecs, in writing order.
    pub codecs: Vec<BytesCodec>,
    /// Set for a sharded array (v3 `sharding_indexed`): `codecs` then apply
    /// to the whole shard (none, in practice) and `endian` is unused.
    pub sharding: Option<Box<Sharding>>,
}

/// How a chunk's grid index becomes its key under the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKeys {
    /// v2 keys, `1.2` (or `1/2`), the separator given.
    V2(char),
    /// v3 default keys, `c/1/2` (or `c.1.2`), the separator given.
    Default(char),
}

/// One Zarr array's metadata, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayMeta {
    /// The store's root URL (no trailing `/`).
    pub store: String,
    /// The array's path inside the store (`measurements/reflectance/r10m/b04`;
    /// empty when the store is the array).
    pub path: String,
    /// v2 or v3.
    pub format: ZarrFormat,
    /// Shape, slowest-varying first (`[rows, cols]`, or `[slices, rows, cols]`).
    pub shape: Vec<u64>,
    /// The chunk grid: the shape of each stored object (a shard, when sharded).
    pub chunk_shape: Vec<u64>,
    /// The sample type.
    pub dtype: DataType,
    /// The fill value (NaN allowed) of chunks that were never written.
    pub fill_value: f64,
    /// How chunks are encoded.
    pub pipeline: Pipeline,
    /// How chunk keys are spelled.
    pub chunk_keys: ChunkKeys,
    /// Dimension names (v3 `dimension_names`, v2 `_ARRAY_DIMENSIONS`).
    pub dimension_names: Vec<Option<String>>,
    /// The array's attributes (v2 `.zattrs`, v3 `attributes`).
    pub attributes: Map<String, Value>,
}

/// CF radiometry of an array: `value = raw × scale_factor + add_offset`, and
/// the raw value meaning "no data".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cf {
    /// `scale_factor`, if the array has one.
    pub scale_factor: Option<f64>,
    /// `add_offset`, if the array has one.
    pub add_offset: Option<f64>,
    /// The raw nodata value: the `_FillValue` attribute, or for a v2 array
    /// written by xarray (it has `_ARRAY_DIMENSIONS`) its `fill_value`, which
    /// is where xarray keeps `_FillValue` in Zarr v2.
    pub nodata: Option<f64>,
}

impl Cf {
    /// `raw × scale_factor + add_offset` (each defaulting to 1 and 0); NaN
    /// stays NaN.
    ///
    /// ```
    /// let cf = tilestack::zarr::Cf { scale_factor: Some(1e-4), add_offset: Some(-0.1), nodata: Some(0.0) };
    /// assert!((cf.apply(2000.0) - 0.1).abs() < 1e-12);
    /// ```
    pub fn apply(&self, raw: f64) -> f64 {
        raw * self.scale_factor.unwrap_or(1.0) + self.add_offset.unwrap_or(0.0)
    }
}

impl ArrayMeta {
    /// The array's URL: `store/path`.
    pub fn href(&self) -> String {
        if self.path.is_empty() {
            self.store.clone()
        } else {
            format!("{}/{}", self.store, self.path)
        }
    }

    /// The error naming this array and its store.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> Error {
        zarr_error(&self.store, &self.path, message)
    }

    /// The CF attributes (`scale_factor`, `add_offset`, nodata).
    pub fn cf(&self) -> Cf {
        let num = |k: &str| self.attributes.get(k).and_then(number);
        let nodata = match self.attributes.get("_FillValue") {
            Some(v) => number(v),
            None if self.format == ZarrFormat::V2
                && self.attributes.contains_key("_ARRAY_DIMENSIONS") =>
            {
                Some(self.fill_value)
            }
            None => None,
        };
        Cf {
            scale_factor: num("scale_factor"),
            add_offset: num("add_offset"),
            nodata,
        }
    }

    /// The chunk shape samples are decoded in: the inner chunk of a sharded
    /// array, else the chunk.
    pub fn read_chunk_shape(&self) -> &[u64] {
        match &self.pipeline.sharding {
            Some(s) => &s.chunk_shape,
            None => &self.chunk_shape,
        }
    }

    /// The key of stored object (chunk or shard) `idx` under the array.
    pub fn chunk_key(&self, idx: &[u64]) -> String {
        let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
        match self.chunk_keys {
            ChunkKeys::V2(_) if parts.is_empty() => "0".into(),
            ChunkKeys::V2(sep) => parts.join(&sep.to_string()),
            ChunkKeys::Default(_) if parts.is_empty() => "c".into(),
            ChunkKeys::Default(sep) => format!("c{sep}{}", parts.join(&sep.to_string())),
        }
    }

    /// v2: a `.zarray` document and its `.zattrs` (if any).
    ///
    /// # Errors
    /// An [`Error::Invalid`] naming store and array for anything malformed,
    /// unsupported or over the limits.
    pub fn from_v2(
        store: &str,
        path: &str,
        zarray: &Value,
        zattrs: Option<&Value>,
    ) -> Result<ArrayMeta> {
        let err = |m: String| zarr_error(store, path, m);
        let obj = zarray
            .as_object()
            .ok_or_else(|| err(".zarray is not a JSON object".into()))?;
        if obj.get("zarr_format").and_then(Value::as_u64) != Some(2) {
            return Err(err(format!(
                ".zarray zarr_format is {}, expected 2",
                obj.get("zarr_format").unwrap_or(&Value::Null)
            )));
        }
        let shape = dims(obj.get("shape"), "shape").map_err(&err)?;
        let chunks = dims(obj.get("chunks"), "chunks").map_err(&err)?;
        let dt = obj.get("dtype").and_then(Value::as_str).unwrap_or("");
        let (dtype, endian) = DataType::from_v2(dt)
            .ok_or_else(|| err(format!("data type {dt:?} is not supported")))?;
        match obj.get("order").and_then(Value::as_str) {
            Some("C") | None => {}
            Some(o) => return Err(err(format!("order {o:?}: only C order is read"))),
        }
        match obj.get("filters") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(f) => {
                let ids: Vec<String> = f
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        c.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect();
                return Err(err(format!(
                    "filter(s) {} not supported (no filters are)",
                    ids.join(", ")
                )));
            }
        }
        let mut codecs = Vec::new();
        match obj.get("compressor") {
            None | Some(Value::Null) => {}
            Some(c) => {
                let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                codecs.push(match id {
                    "blosc" => BytesCodec::Blosc,
                    "zstd" => BytesCodec::Zstd,
                    "gzip" => BytesCodec::Gzip,
                    "zlib" => BytesCodec::Zlib,
                    _ => {
                        return Err(err(format!(
                            "codec {id:?} is not supported (blosc, zstd, gzip and zlib are)"
                        )));
                    }
                });
            }
        }
        let separator = match obj.get("dimension_separator").and_then(Value::as_str) {
            None | Some(".") => '.',
            Some("/") => '/',
            Some(s) => return Err(err(format!("dimension_separator {s:?}"))),
        };
        let fill_value = fill(obj.get("fill_value"), dtype)
            .ok_or_else(|| err(format!("fill_value {}", obj["fill_value"])))?;
        let attributes = match zattrs {
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(err(".zattrs is not a JSON object".into())),
            None => Map::new(),
        };
        let dimension_names = attributes
            .get("_ARRAY_DIMENSIONS")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let meta = ArrayMeta {
            store: store.to_string(),
            path: path.to_string(),
            format: ZarrFormat::V2,
            shape,
            chunk_shape: chunks,
            dtype,
            fill_value,
            pipeline: Pipeline {
                endian,
                codecs,
                sharding: None,
            },
            chunk_keys: ChunkKeys::V2(separator),
            dimension_names,
            attributes,
        };
        meta.check()?;
        Ok(meta)
    }

    /// v3: a `zarr.json` document of `node_type` `array`.
    ///
    /// # Errors
    /// As [`ArrayMeta::from_v2`]; a codec other than `bytes`, `blosc`,
    /// `zstd`, `gzip`, `crc32c`, `sharding_indexed` (and `transpose` in C
    /// order) is an error naming it.
    ///
    /// # Examples
    /// ```
    /// use tilestack::zarr::ArrayMeta;
    /// let doc = serde_json::json!({
    ///     "zarr_format": 3, "node_type": "array", "shape": [100, 80], "data_type": "uint16",
    ///     "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [64, 64]}},
    ///     "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    ///     "fill_value": 0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
    ///                                 {"name": "zstd", "configuration": {"level": 3}}]});
    /// let m = ArrayMeta::from_v3("http://h/s.zarr", "b04", &doc)?;
    /// assert_eq!(m.chunk_key(&[1, 0]), "c/1/0");
    /// let bad = serde_json::json!({"zarr_format": 3, "node_type": "array", "shape": [10],
    ///     "data_type": "uint8", "fill_value": 0,
    ///     "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5]}},
    ///     "codecs": [{"name": "bytes"}, {"name": "lzma_fancy"}]});
    /// let e = ArrayMeta::from_v3("http://h/s.zarr", "b04", &bad).unwrap_err().to_string();
    /// assert!(e.contains("lzma_fancy") && e.contains("b04") && e.contains("s.zarr"));
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    pub fn from_v3(store: &str, path: &str, doc: &Value) -> Result<ArrayMeta> {
        let err = |m: String| zarr_error(store, path, m);
        let obj = doc
            .as_object()
            .ok_or_else(|| err("zarr.json is not a JSON object".into()))?;
        if obj.get("zarr_format").and_then(Value::as_u64) != Some(3) {
            return Err(err("zarr.json zarr_format is not 3".into()));
        }
        match obj.get("node_type").and_then(Value::as_str) {
            Some("array") => {}
            Some(t) => return Err(err(format!("node_type is {t:?}, not an array"))),
            None => return Err(err("zarr.json has no node_type".into())),
        }
        let shape = dims(obj.get("shape"), "shape").map_err(&err)?;
        let dt = obj.get("data_type").and_then(Value::as_str).unwrap_or("");
        let dtype = DataType::from_v3(dt)
            .ok_or_else(|| err(format!("data type {dt:?} is not supported")))?;
        let grid = obj
            .get("chunk_grid")
            .ok_or_else(|| err("no chunk_grid".into()))?;
        if grid.get("name").and_then(Value::as_str) != Some("regular") {
            return Err(err(format!(
                "chunk grid {}: only regular grids are read",
                grid.get("name").unwrap_or(&Value::Null)
            )));
        }
        let chunk_shape =
            dims(grid.pointer("/configuration/chunk_shape"), "chunk_shape").map_err(&err)?;
        let chunk_keys = match obj.get("chunk_key_encoding") {
            None => ChunkKeys::Default('/'),
            Some(k) => {
                let name = k.get("name").and_then(Value::as_str).unwrap_or("");
                let sep = k
                    .pointer("/configuration/separator")
                    .and_then(Value::as_str);
                match (name, sep) {
                    ("default", None | Some("/")) => ChunkKeys::Default('/'),
                    ("default", Some(".")) => ChunkKeys::Default('.'),
                    ("v2", None | Some(".")) => ChunkKeys::V2('.'),
                    ("v2", Some("/")) => ChunkKeys::V2('/'),
                    _ => return Err(err(format!("chunk_key_encoding {k}"))),
                }
            }
        };
        if let Some(t) = obj.get("storage_transformers").and_then(Value::as_array)
            && !t.is_empty()
        {
            return Err(err("storage transformers are not supported".into()));
        }
        let fill_value = fill(obj.get("fill_value"), dtype)
            .ok_or_else(|| err(format!("fill_value {}", obj["fill_value"])))?;
        let codecs = obj
            .get("codecs")
            .and_then(Value::as_array)
            .ok_or_else(|| err("no codecs".into()))?;
        let pipeline = pipeline_v3(codecs, shape.len(), 0).map_err(&err)?;
        let attributes = match obj.get("attributes") {
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(err("attributes is not a JSON object".into())),
        };
        let dimension_names = obj
            .get("dimension_names")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let meta = ArrayMeta {
            store: store.to_string(),
            path: path.to_string(),
            format: ZarrFormat::V3,
            shape,
            chunk_shape,
            dtype,
            fill_value,
            pipeline,
            chunk_keys,
            dimension_names,
            attributes,
        };
        meta.check()?;
        Ok(meta)
    }

    /// Ranks agree, chunks are non-zero, sizes are under the limits, a
    /// shard's inner chunks tile it.
    fn check(&self) -> Result<()> {
        let n = self.shape.len();
        if n == 0 || n > MAX_DIMS {
            return Err(self.error(format!("{n} dimensions (1 to {MAX_DIMS} are read)")));
        }
        if self.chunk_shape.len() != n {
            return Err(self.error(format!(
                "the chunk grid {:?} has {} dimensions but the shape {:?} has {n}",
                self.chunk_shape,
                self.chunk_shape.len(),
                self.shape
            )));
        }
        if self.chunk_shape.contains(&0) {
            return Err(self.error(format!("chunk shape {:?} has a zero", self.chunk_shape)));
        }
        let elements = self
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&e| e <= MAX_ARRAY_ELEMENTS);
        if elements.is_none() {
            return Err(self.error(format!(
                "shape {:?} is over the limit of 2^48 elements",
                self.shape
            )));
        }
        let chunk_bytes = |shape: &[u64]| {
            shape
                .iter()
                .try_fold(self.dtype.size() as u64, |a, &d| a.checked_mul(d))
                .filter(|&b| b <= MAX_CHUNK_BYTES)
        };
        match &self.pipeline.sharding {
            None => {
                if chunk_bytes(&self.chunk_shape).is_none() {
                    return Err(self.error(format!(
                        "chunk shape {:?} is over the limit of {MAX_CHUNK_BYTES} bytes a chunk",
                        self.chunk_shape
                    )));
                }
            }
            Some(s) => {
                if s.chunk_shape.len() != n {
                    return Err(self.error(format!(
                        "the inner chunk shape {:?} has {} dimensions but the shape has {n}",
                        s.chunk_shape,
                        s.chunk_shape.len()
                    )));
                }
                if s.chunk_shape.contains(&0)
                    || self
                        .chunk_shape
                        .iter()
                        .zip(&s.chunk_shape)
                        .any(|(a, b)| a % b != 0)
                {
                    return Err(self.error(format!(
                        "the inner chunks {:?} do not tile the shard {:?}",
                        s.chunk_shape, self.chunk_shape
                    )));
                }
                if chunk_bytes(&s.chunk_shape).is_none() {
                    return Err(self.error(format!(
                        "inner chunk shape {:?} is over the limit of {MAX_CHUNK_BYTES} bytes a chunk",
                        s.chunk_shape
                    )));
                }
                let per_shard = s
                    .chunks_per_shard(&self.chunk_shape)
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d))
                    .filter(|&c| c <= MAX_SHARD_CHUNKS);
                if per_shard.is_none() {
                    return Err(self.error(format!(
                        "shards of {:?} inner chunks {:?}: over {MAX_SHARD_CHUNKS} inner chunks a shard",
                        self.chunk_shape, s.chunk_shape
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A list of positive sizes (`shape`, `chunks`), each at most 2^40.
fn dims(v: Option<&Value>, what: &str) -> std::result::Result<Vec<u64>, String> {
    let a = v
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} is missing or not a list"))?;
    if a.len() > MAX_DIMS {
        return Err(format!(
            "{what} has {} dimensions, over {MAX_DIMS}",
            a.len()
        ));
    }
    a.iter()
        .map(|d| {
            d.as_u64()
                .filter(|&d| d <= 1 << 40)
                .ok_or_else(|| format!("{what} {v:?}: {d} is not a size up to 2^40", v = a))
        })
        .collect()
}

/// A JSON number, or `"NaN"`/`"Infinity"`/`"-Infinity"`, as f64.
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => s.parse().ok(),
        },
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// The fill value as f64: a number, a NaN/Infinity string, a v3 hex float
/// (`"0x7fc00000"`), or null (read as 0 for integers and NaN for floats).
fn fill(v: Option<&Value>, dtype: DataType) -> Option<f64> {
    let float = matches!(dtype, DataType::F32 | DataType::F64);
    match v {
        None | Some(Value::Null) => Some(if float { f64::NAN } else { 0.0 }),
        Some(Value::String(s)) if s.starts_with("0x") => {
            let bits = u64::from_str_radix(&s[2..], 16).ok()?;
            match dtype {
                DataType::F32 => Some(f64::from(f32::from_bits(u32::try_from(bits).ok()?))),
                DataType::F64 => Some(f64::from_bits(bits)),
                _ => None,
            }
        }
        Some(v) => number(v),
    }
}

/// The v3 codec list: array-to-array (only `transpose` in C order), one
/// array-to-bytes (`bytes` or `sharding_indexed`), then bytes-to-bytes.
fn pipeline_v3(
    codecs: &[Value],
    ndim: usize,
    depth: usize,
) -> std::result::Result<Pipeline, String> {
    let mut endian = Endian::Little;
    let mut sharding = None;
    let mut bytes_codecs = Vec::new();
    let mut seen_a2b = false;
    for c in codecs {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let conf = c.get("configuration");
        match name {
            "transpose" => {
                let order: Vec<u64> = conf
                    .and_then(|c| c.get("order"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                if seen_a2b || order != (0..ndim as u64).collect::<Vec<_>>() {
                    return Err(format!(
                        "codec transpose with order {order:?}: only C order is read"
                    ));
                }
            }
            "bytes" if !seen_a2b => {
                seen_a2b = true;
                endian = match conf.and_then(|c| c.get("endian")).and_then(Value::as_str) {
                    None | Some("little") => Endian::Little,
                    Some("big") => Endian::Big,
                    Some(e) => return Err(format!("codec bytes with endian {e:?}")),
                };
            }
            "sharding_indexed" if !seen_a2b => {
                seen_a2b = true;
                if depth > 0 {
                    return Err("codec sharding_indexed inside a shard is not supported".into());
                }
                let conf = conf.ok_or("codec sharding_indexed has no configuration")?;
                let chunk_shape = dims(conf.get("chunk_shape"), "sharding chunk_shape")?;
                let inner = conf
                    .get("codecs")
                    .and_then(Value::as_array)
                    .ok_or("codec sharding_indexed has no codecs")?;
                let inner = pipeline_v3(inner, ndim, depth + 1)?;
                let index = conf
                    .get("index_codecs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_else(|| {
                        vec![
                            serde_json::json!({"name": "bytes"}),
                            serde_json::json!({"name": "crc32c"}),
                        ]
                    });
                let index = pipeline_v3(&index, 1, depth + 1)
                    .map_err(|e| format!("sharding index: {e}"))?;
                let index_crc32c = match index.codecs.as_slice() {
                    [] => false,
                    [BytesCodec::Crc32c] => true,
                    other => {
                        return Err(format!(
                            "sharding index codecs {:?}: only bytes and crc32c are read",
                            other.iter().map(BytesCodec::name).collect::<Vec<_>>()
                        ));
                    }
                };
                let index_location = match conf.get("index_location").and_then(Value::as_str) {
                    None | Some("end") => IndexLocation::End,
                    Some("start") => IndexLocation::Start,
                    Some(l) => return Err(format!("sharding index_location {l:?}")),
                };
                sharding = Some(Box::new(Sharding {
                    chunk_shape,
                    inner,
                    index_endian: index.endian,
                    index_crc32c,
                    index_location,
                }));
            }
            "blosc" | "zstd" | "gzip" | "crc32c" if seen_a2b => bytes_codecs.push(match name {
                "blosc" => BytesCodec::Blosc,
                "zstd" => BytesCodec::Zstd,
                "gzip" => BytesCodec::Gzip,
                _ => BytesCodec::Crc32c,
            }),
            _ => {
                return Err(format!(
                    "codec {name:?} is not supported here (bytes, blosc, zstd, gzip, crc32c \
                     and sharding_indexed are)"
                ));
            }
        }
    }
    if !seen_a2b {
        return Err("no array-to-bytes codec (bytes or sharding_indexed)".into());
    }
    if sharding.is_some() && !bytes_codecs.is_empty() {
        return Err("codecs after sharding_indexed are not supported".into());
    }
    Ok(Pipeline {
        endian,
        codecs: bytes_codecs,
        sharding,
    })
}

/// A store's consolidated metadata: every node's documents by path.
#[derive(Debug, Clone, Default)]
pub struct Consolidated {
    /// v2 (`.zmetadata`) or v3 (`consolidated_metadata` in the root `zarr.json`).
    pub format: Option<ZarrFormat>,
    /// v2: key (`a/b/.zarray`) → document; v3: node path → `zarr.json` document.
    pub docs: Map<String, Value>,
}

impl Consolidated {
    /// Parses a v2 `.zmetadata` document.
    ///
    /// # Errors
    /// Broken JSON or a document without a `metadata` object.
    pub fn from_v2(store: &str, bytes: &[u8]) -> Result<Consolidated> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| zarr_error_because(store, "", ".zmetadata is not valid JSON", e))?;
        let docs = v
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| zarr_error(store, "", ".zmetadata has no metadata object"))?;
        Ok(Consolidated {
            format: Some(ZarrFormat::V2),
            docs: docs.clone(),
        })
    }

    /// From a v3 root `zarr.json` (its `consolidated_metadata`, if any).
    pub fn from_v3_root(root: &Value) -> Consolidated {
        match root
            .pointer("/consolidated_metadata/metadata")
            .and_then(Value::as_object)
        {
            Some(m) => Consolidated {
                format: Some(ZarrFormat::V3),
                docs: m.clone(),
            },
            None => Consolidated::default(),
        }
    }

    /// The array at `path`, if the consolidated metadata has it.
    ///
    /// # Errors
    /// As [`ArrayMeta::from_v2`] / [`ArrayMeta::from_v3`].
    pub fn array(&self, store: &str, path: &str) -> Result<Option<ArrayMeta>> {
        let key = |leaf: &str| {
            if path.is_empty() {
                leaf.to_string()
            } else {
                format!("{path}/{leaf}")
            }
        };
        match self.format {
            Some(ZarrFormat::V2) => match self.docs.get(&key(".zarray")) {
                Some(z) => {
                    ArrayMeta::from_v2(store, path, z, self.docs.get(&key(".zattrs"))).map(Some)
                }
                None => Ok(None),
            },
            Some(ZarrFormat::V3) => match self.docs.get(path) {
                Some(d) if d.get("node_type").and_then(Value::as_str) == Some("array") => {
                    ArrayMeta::from_v3(store, path, d).map(Some)
                }
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The attributes of the node (group or array) at `path`, if known.
    pub fn attributes(&self, path: &str) -> Option<Map<String, Value>> {
        match self.format {
            Some(ZarrFormat::V2) => {
                let k = if path.is_empty() {
                    ".zattrs".to_string()
                } else {
                    format!("{path}/.zattrs")
                };
                self.docs.get(&k).and_then(Value::as_object).cloned()
            }
            Some(ZarrFormat::V3) => self
                .docs
                .get(path)
                .and_then(|d| d.get("attributes"))
                .and_then(Value::as_object)
                .cloned(),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2(shape: Value, chunks: Value, dtype: &str, compressor: Value) -> Value {
        json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
               "compressor": compressor, "fill_value": 0, "order": "C", "filters": null})
    }

    #[test]
    fn v2_metadata_is_typed_and_checked() {
        let m = ArrayMeta::from_v2(
            "http://h/p.zarr",
            "m/b04",
            &v2(json!([190, 250]), json!([64, 64]), "<u2", json!({"id": "blosc", "cname": "lz4"})),
            Some(&json!({"_ARRAY_DIMENSIONS": ["y", "x"], "scale_factor": 0.0001, "add_offset": -0.1})),
        )
        .unwrap();
        assert_eq!(m.dtype, DataType::U16);
        assert_eq!(m.pipeline.codecs, vec![BytesCodec::Blosc]);
        assert_eq!(m.chunk_key(&[2, 3]), "2.3");
        assert_eq!(m.href(), "http://h/p.zarr/m/b04");
        let cf = m.cf();
        assert_eq!(cf.nodata, Some(0.0));
        assert_eq!(cf.scale_factor, Some(0.0001));
        assert_eq!(m.dimension_names, vec![Some("y".into()), Some("x".into())]);

        let bad = |z: Value| {
            ArrayMeta::from_v2("http://h/p.zarr", "m/b04", &z, None)
                .unwrap_err()
                .to_string()
        };
        for (z, needle) in [
            (
                v2(json!([10, 10]), json!([5]), "<u2", Value::Null),
                "chunk grid",
            ),
            (
                v2(json!([10, 10]), json!([5, 0]), "<u2", Value::Null),
                "zero",
            ),
            (
                v2(
                    json!([1u64 << 40, 1u64 << 40]),
                    json!([5, 5]),
                    "<u2",
                    Value::Null,
                ),
                "limit",
            ),
            (
                v2(
                    json!([10, 10]),
                    json!([1u64 << 20, 1u64 << 20]),
                    "<u2",
                    Value::Null,
                ),
                "limit",
            ),
            (
                v2(json!([10, 10]), json!([5, 5]), "<c16", Value::Null),
                "<c16",
            ),
            (
                v2(json!([10, 10]), json!([5, 5]), "<u2", json!({"id": "lzma"})),
                "lzma",
            ),
            (
                v2(json!([10, -1]), json!([5, 5]), "<u2", Value::Null),
                "shape",
            ),
            (json!([1, 2]), "object"),
        ] {
            let e = bad(z);
            assert!(
                e.contains(needle) && e.contains("m/b04") && e.contains("p.zarr"),
                "{e}"
            );
        }
    }

    #[test]
    fn v3_sharding_is_parsed_and_checked() {
        let doc = |inner: Value, shard: Value| {
            json!({"zarr_format": 3, "node_type": "array", "shape": [190, 250], "data_type": "uint16",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shard}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": 0,
                "codecs": [{"name": "sharding_indexed", "configuration": {
                    "chunk_shape": inner,
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "blosc", "configuration": {"cname": "zstd"}}],
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                    "index_location": "start"}}]})
        };
        let m = ArrayMeta::from_v3("s", "a", &doc(json!([32, 32]), json!([128, 128]))).unwrap();
        let s = m.pipeline.sharding.as_ref().unwrap();
        assert_eq!(s.index_location, IndexLocation::Start);
        assert!(s.index_crc32c);
        assert_eq!(s.inner.codecs, vec![BytesCodec::Blosc]);
        assert_eq!(s.chunks_per_shard(&m.chunk_shape), vec![4, 4]);
        assert_eq!(s.index_len(16), 260);
        assert_eq!(m.read_chunk_shape(), &[32, 32]);
        assert_eq!(m.chunk_key(&[1, 0]), "c/1/0");
        let e = ArrayMeta::from_v3("s", "a", &doc(json!([30, 32]), json!([128, 128])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not tile"), "{e}");
        let e = ArrayMeta::from_v3("s", "a", &doc(json!([1, 1]), json!([1 << 20, 1 << 20])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inner chunks a shard"), "{e}");
    }

    #[test]
    fn fill_values() {
        assert!(fill(Some(&json!("NaN")), DataType::F32).unwrap().is_nan());
        assert!(
            fill(Some(&json!("0x7fc00000")), DataType::F32)
                .unwrap()
                .is_nan()
        );
        assert_eq!(fill(Some(&json!(7)), DataType::U16), Some(7.0));
        assert_eq!(fill(None, DataType::U16), Some(0.0));
        assert_eq!(fill(Some(&json!([1])), DataType::U16), None);
    }
}
