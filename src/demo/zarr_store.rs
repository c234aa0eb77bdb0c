//! The demo world's scenes as Zarr stores too (recipe option `zarr`,
//! `tilestack world --zarr`): each scene as an EOPF-like Zarr **v2** store
//! and as a sharded Zarr **v3** GeoZarr store, with a STAC collection of
//! items pointing at each, so that stacks from Zarr items can be checked
//! against the stacks from the COG items, pixel for pixel.
//!
//! - `data/<id>/eopf-v2.zarr`: consolidated `.zmetadata`; uint16 counts
//!   with CF `scale_factor` 0.0001 and `add_offset` −0.1, stored as ESA's
//!   processing baseline 04.00+ stores them (the COG's count + 1000; nodata
//!   stays 0, `_FillValue` 0); chunks of a sixth of the side (EOPF's
//!   1830² of 10980²), Blosc-Zstandard with byte shuffle; `x`/`y` int64
//!   coordinate arrays of pixel centres (`y` descending) in each resolution
//!   group; the CRS only in the root attributes
//!   (`stac_discovery.properties.proj:epsg`). SCL (uint8, no CF scale) in
//!   `conditions/mask/l2a_classification/r20m/scl`.
//! - `data/<id>/geozarr-v3.zarr`: `sharding_indexed` arrays (shards of
//!   1024², inner chunks of 256², Blosc-Zstandard, index at the end with
//!   CRC-32C), counts as in the COG with `scale_factor` 0.0001 and
//!   `add_offset` 0, `grid_mapping: "spatial_ref"` naming a scalar
//!   `spatial_ref` variable per resolution group that holds the GDAL
//!   `GeoTransform` and `proj:code`.
//!
//! Chunks (and inner chunks, and shards) that are all nodata are not
//! written, as zarr-python does by default: readers fill them.
//!
//! Items: `items-zarr-v2/<id>.json` and `items-zarr-v3/<id>.json` (asset
//! keys as EOPF names its arrays: `b02`…`b11`, `scl`; media type
//! `application/vnd+zarr`), collections `collection-zarr-v2.json` and
//! `collection-zarr-v3.json`, ids `<collection>-zarr-v2` / `-zarr-v3`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::demo::world::World;
use crate::error::{Error, Problem, Result};
use crate::units::Epsg;

/// The two store layouts a demo world publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZarrLayout {
    /// EOPF-like Zarr v2, consolidated, chunked, Blosc.
    EopfV2,
    /// GeoZarr-like Zarr v3, sharded.
    GeoZarrV3,
}

impl ZarrLayout {
    /// Both layouts.
    pub const ALL: [ZarrLayout; 2] = [ZarrLayout::EopfV2, ZarrLayout::GeoZarrV3];

    /// `zarr-v2` / `zarr-v3`: the suffix of the collection id and of the
    /// items folder.
    pub fn suffix(self) -> &'static str {
        match self {
            ZarrLayout::EopfV2 => "zarr-v2",
            ZarrLayout::GeoZarrV3 => "zarr-v3",
        }
    }

    /// The store's folder name under `data/<id>/`.
    pub fn store_name(self) -> &'static str {
        match self {
            ZarrLayout::EopfV2 => "eopf-v2.zarr",
            ZarrLayout::GeoZarrV3 => "geozarr-v3.zarr",
        }
    }
}

/// The counts the v2 store adds to every valid pixel (EOPF's
/// `BOA_ADD_OFFSET`, declared as CF `add_offset` −0.1 at scale 0.0001).
pub const V2_COUNT_OFFSET: u16 = 1000;

/// Side of a v3 shard and of its inner chunks, pixels.
const V3_SHARD: usize = 1024;
const V3_INNER: usize = 256;

/// One band's pixels as the COG got them.
pub(crate) enum Pixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// One band of a scene: its name (`B04`, `SCL`), resolution, side, pixels.
pub(crate) struct BandPixels {
    pub(crate) band: &'static str,
    pub(crate) res: f64,
    pub(crate) n: usize,
    pub(crate) px: Pixels,
}

/// Where a scene lies: its CRS and upper-left corner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SceneGeo {
    pub(crate) epsg: Epsg,
    pub(crate) ulx: f64,
    pub(crate) uly: f64,
}

/// The group of a band in both layouts, and its array name.
fn band_path(band: &str, res: f64) -> (String, String) {
    let name = band.to_ascii_lowercase();
    if band == "SCL" {
        (
            format!("conditions/mask/l2a_classification/r{}m", res as u32),
            name,
        )
    } else {
        (format!("measurements/reflectance/r{}m", res as u32), name)
    }
}

/// The href (relative to an item in `items-zarr-*/`) of a band's array.
fn band_href(id: &str, layout: ZarrLayout, band: &str, res: f64) -> String {
    let (group, name) = band_path(band, res);
    format!("../data/{id}/{}/{group}/{name}", layout.store_name())
}

/// Writes both stores of scene `id` into `scene_dir` (`data/<id>`).
/// Returns the bytes written.
pub(crate) fn write_scene_stores(
    scene_dir: &Path,
    id: &str,
    datetime: &str,
    geo: SceneGeo,
    bands: &[BandPixels],
) -> Result<u64> {
    let mut w = Writer::default();
    write_v2(
        &mut w,
        &scene_dir.join(ZarrLayout::EopfV2.store_name()),
        id,
        datetime,
        geo,
        bands,
    )?;
    write_v3(
        &mut w,
        &scene_dir.join(ZarrLayout::GeoZarrV3.store_name()),
        id,
        geo,
        bands,
    )?;
    Ok(w.bytes)
}

#[derive(Default)]
struct Writer {
    bytes: u64,
}

impl Writer {
    fn file(&mut self, p: &Path, bytes: &[u8]) -> Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        std::fs::write(p, bytes).map_err(|e| Error::io(p, e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn json(&mut self, p: &Path, v: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(v).unwrap_or_default();
        self.file(p, text.as_bytes())
    }
}

/// The chunk `(cy, cx)` of side `c` of an `n × n` band, padded with 0 (the
/// fill value) to `c × c`, as little-endian bytes; `None` when it is all 0.
fn chunk_bytes(px: &Pixels, n: usize, c: usize, cy: usize, cx: usize, add: u16) -> Option<Vec<u8>> {
    let size = match px {
        Pixels::U8(_) => 1,
        Pixels::U16(_) => 2,
    };
    let mut out = vec![0u8; c * c * size];
    let mut any = false;
    for r in 0..c {
        let y = cy * c + r;
        if y >= n {
            break;
        }
        for k in 0..c {
            let x = cx * c + k;
            if x >= n {
                break;
            }
            let at = r * c + k;
            match px {
                Pixels::U8(v) => {
                    let s = v[y * n + x];
                    any |= s != 0;
                    out[at] = s;
                }
                Pixels::U16(v) => {
                    let s = v[y * n + x];
                    let s = if s == 0 { 0 } else { s.saturating_add(add) };
                    any |= s != 0;
                    out[2 * at..2 * at + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
    any.then_some(out)
}

/// A Blosc (format 1) buffer of `src`: one block, not split, byte-shuffled
/// for `typesize`, Zstandard level 3 (stored as is when that is no smaller),
/// as c-blosc and numcodecs read it.
pub(crate) fn blosc_zstd(src: &[u8], typesize: usize) -> Vec<u8> {
    const DOSHUFFLE: u8 = 0x1;
    const DONT_SPLIT: u8 = 0x10;
    const ZSTD: u8 = 4 << 5;
    let n = src.len();
    let shuffled: Vec<u8> = if typesize > 1 {
        let m = n / typesize;
        let mut s = vec![0u8; n];
        for j in 0..typesize {
            for i in 0..m {
                s[j * m + i] = src[i * typesize + j];
            }
        }
        s[m * typesize..].copy_from_slice(&src[m * typesize..]);
        s
    } else {
        src.to_vec()
    };
    let z = zstd::bulk::compress(&shuffled, 3).unwrap_or_default();
    let body: &[u8] = if !z.is_empty() && z.len() < n {
        &z
    } else {
        &shuffled
    };
    let flags = DONT_SPLIT | ZSTD | if typesize > 1 { DOSHUFFLE } else { 0 };
    let cbytes = 16 + 4 + 4 + body.len();
    let mut out = Vec::with_capacity(cbytes);
    out.extend_from_slice(&[2, 1, flags, typesize as u8]);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes()); // one block
    out.extend_from_slice(&(cbytes as u32).to_le_bytes());
    out.extend_from_slice(&20u32.to_le_bytes()); // the block's start
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn dtype_of(px: &Pixels) -> (&'static str, &'static str, usize) {
    match px {
        Pixels::U8(_) => ("|u1", "uint8", 1),
        Pixels::U16(_) => ("<u2", "uint16", 2),
    }
}

/// The `x`/`y` pixel-centre coordinates of a band's grid, as int64 LE.
fn coordinates(geo: SceneGeo, res: f64, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut xs = Vec::with_capacity(8 * n);
    let mut ys = Vec::with_capacity(8 * n);
    for i in 0..n {
        let x = geo.ulx + (i as f64 + 0.5) * res;
        let y = geo.uly - (i as f64 + 0.5) * res;
        xs.extend_from_slice(&(x.round() as i64).to_le_bytes());
        ys.extend_from_slice(&(y.round() as i64).to_le_bytes());
    }
    (xs, ys)
}

fn write_v2(
    w: &mut Writer,
    root: &Path,
    id: &str,
    datetime: &str,
    geo: SceneGeo,
    bands: &[BandPixels],
) -> Result<()> {
    let mut meta = Map::new();
    let group = json!({"zarr_format": 2});
    meta.insert(".zgroup".into(), group.clone());
    meta.insert(
        ".zattrs".into(),
        json!({
            "stac_discovery": {"id": id, "properties": {
                "datetime": datetime,
                "proj:epsg": geo.epsg.code(),
                "product:type": "S02MSIL2A",
                "processing:version": "05.10",
            }},
            "other_metadata": {"note": "synthetic tilestack demo world (EOPF-like layout)"},
        }),
    );
    let mut groups: Vec<String> = Vec::new();
    for b in bands {
        let (g, name) = band_path(b.band, b.res);
        // every group on the way, once
        let parts: Vec<&str> = g.split('/').collect();
        for k in 1..=parts.len() {
            let sub = parts[..k].join("/");
            if !groups.contains(&sub) {
                groups.push(sub.clone());
                meta.insert(format!("{sub}/.zgroup"), group.clone());
                meta.insert(format!("{sub}/.zattrs"), json!({}));
                if k == parts.len() {
                    // the resolution group's coordinates
                    let (xs, ys) = coordinates(geo, b.res, b.n);
                    for (axis, data) in [("x", xs), ("y", ys)] {
                        let zarray = json!({
                            "zarr_format": 2, "shape": [b.n], "chunks": [b.n], "dtype": "<i8",
                            "compressor": null, "fill_value": null, "order": "C", "filters": null,
                            "dimension_separator": ".",
                        });
                        let zattrs = json!({
                            "_ARRAY_DIMENSIONS": [axis],
                            "standard_name": format!("projection_{axis}_coordinate"),
                            "units": "m",
                        });
                        let base = root.join(&sub).join(axis);
                        w.json(&base.join(".zarray"), &zarray)?;
                        w.json(&base.join(".zattrs"), &zattrs)?;
                        w.file(&base.join("0"), &data)?;
                        meta.insert(format!("{sub}/{axis}/.zarray"), zarray);
                        meta.insert(format!("{sub}/{axis}/.zattrs"), zattrs);
                    }
                }
            }
        }
        let (dtype, _, size) = dtype_of(&b.px);
        let c = b.n.div_ceil(6).max(16);
        let zarray = json!({
            "zarr_format": 2, "shape": [b.n, b.n], "chunks": [c, c], "dtype": dtype,
            "compressor": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0},
            "fill_value": 0, "order": "C", "filters": null, "dimension_separator": ".",
        });
        let mut zattrs = json!({
            "_ARRAY_DIMENSIONS": ["y", "x"],
            "_FillValue": 0,
            "long_name": format!("{} of the synthetic demo scene", b.band),
        });
        let add = if matches!(b.px, Pixels::U16(_)) {
            zattrs["scale_factor"] = json!(0.0001);
            zattrs["add_offset"] = json!(-0.1);
            zattrs["units"] = json!("digital_counts");
            V2_COUNT_OFFSET
        } else {
            zattrs["flag_meanings"] = json!("SCL classes 0-11");
            0
        };
        let base = root.join(&g).join(&name);
        w.json(&base.join(".zarray"), &zarray)?;
        w.json(&base.join(".zattrs"), &zattrs)?;
        let k = b.n.div_ceil(c);
        for cy in 0..k {
            for cx in 0..k {
                if let Some(raw) = chunk_bytes(&b.px, b.n, c, cy, cx, add) {
                    w.file(&base.join(format!("{cy}.{cx}")), &blosc_zstd(&raw, size))?;
                }
            }
        }
        meta.insert(format!("{g}/{name}/.zarray"), zarray);
        meta.insert(format!("{g}/{name}/.zattrs"), zattrs);
    }
    w.json(&root.join(".zgroup"), &group)?;
    w.json(&root.join(".zattrs"), &meta[".zattrs"].clone())?;
    for g in &groups {
        w.json(&root.join(g).join(".zgroup"), &group)?;
        w.json(&root.join(g).join(".zattrs"), &json!({}))?;
    }
    w.json(
        &root.join(".zmetadata"),
        &json!({"zarr_consolidated_format": 1, "metadata": meta}),
    )
}

fn write_v3(
    w: &mut Writer,
    root: &Path,
    id: &str,
    geo: SceneGeo,
    bands: &[BandPixels],
) -> Result<()> {
    let group = |attrs: Value| json!({"zarr_format": 3, "node_type": "group", "attributes": attrs});
    w.json(
        &root.join("zarr.json"),
        &group(json!({
            "title": format!("{id} (synthetic GeoZarr-like store)"),
            "proj:code": geo.epsg.to_string(),
        })),
    )?;
    let mut groups: Vec<String> = Vec::new();
    for b in bands {
        let (g, name) = band_path(b.band, b.res);
        let parts: Vec<&str> = g.split('/').collect();
        for k in 1..=parts.len() {
            let sub = parts[..k].join("/");
            if groups.contains(&sub) {
                continue;
            }
            groups.push(sub.clone());
            w.json(&root.join(&sub).join("zarr.json"), &group(json!({})))?;
            if k == parts.len() {
                let sref = json!({
                    "zarr_format": 3, "node_type": "array", "shape": [], "data_type": "int64",
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": []}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": 0,
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                    "attributes": {
                        "GeoTransform": format!("{} {} 0.0 {} 0.0 {}", geo.ulx, b.res, geo.uly, -b.res),
                        "proj:code": geo.epsg.to_string(),
                        "grid_mapping_name": "transverse_mercator",
                    },
                });
                w.json(
                    &root.join(&sub).join("spatial_ref").join("zarr.json"),
                    &sref,
                )?;
            }
        }
        let (_, dtype, size) = dtype_of(&b.px);
        let mut attrs = json!({"_FillValue": 0, "grid_mapping": "spatial_ref"});
        if matches!(b.px, Pixels::U16(_)) {
            attrs["scale_factor"] = json!(0.0001);
            attrs["add_offset"] = json!(0.0);
        }
        let blosc = json!({"name": "blosc", "configuration": {
            "typesize": size, "cname": "zstd", "clevel": 3,
            "shuffle": if size > 1 { "shuffle" } else { "noshuffle" }, "blocksize": 0}});
        let zarr_json = json!({
            "zarr_format": 3, "node_type": "array", "shape": [b.n, b.n], "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [V3_SHARD, V3_SHARD]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [V3_INNER, V3_INNER],
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, blosc],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end",
            }}],
            "attributes": attrs,
            "dimension_names": ["y", "x"],
            "storage_transformers": [],
        });
        let base = root.join(&g).join(&name);
        w.json(&base.join("zarr.json"), &zarr_json)?;
        let per = V3_SHARD / V3_INNER;
        let inner_n = b.n.div_ceil(V3_INNER);
        for sy in 0..b.n.div_ceil(V3_SHARD) {
            for sx in 0..b.n.div_ceil(V3_SHARD) {
                let mut body = Vec::new();
                let mut index = vec![u64::MAX; 2 * per * per];
                for iy in 0..per {
                    for ix in 0..per {
                        let (cy, cx) = (sy * per + iy, sx * per + ix);
                        if cy >= inner_n || cx >= inner_n {
                            continue;
                        }
                        if let Some(raw) = chunk_bytes(&b.px, b.n, V3_INNER, cy, cx, 0) {
                            let enc = blosc_zstd(&raw, size);
                            index[2 * (iy * per + ix)] = body.len() as u64;
                            index[2 * (iy * per + ix) + 1] = enc.len() as u64;
                            body.extend_from_slice(&enc);
                        }
                    }
                }
                if body.is_empty() {
                    continue; // an empty shard is not written
                }
                let idx: Vec<u8> = index.iter().flat_map(|v| v.to_le_bytes()).collect();
                body.extend_from_slice(&idx);
                body.extend_from_slice(&crate::zarr::codec::crc32c(&idx).to_le_bytes());
                w.file(
                    &base.join("c").join(sy.to_string()).join(sx.to_string()),
                    &body,
                )?;
            }
        }
    }
    Ok(())
}

/// The Zarr item of `layout` made from a scene's COG item: same id,
/// geometry and properties (collection `<collection>-<suffix>`), one asset
/// per band keyed as EOPF names its arrays (`b04`, `scl`), pointing at the
/// array in the scene's store.
pub(crate) fn zarr_item(cog_item: &Value, layout: ZarrLayout) -> Value {
    let mut item = cog_item.clone();
    let id = item["id"].as_str().unwrap_or_default().to_string();
    let collection = item["collection"].as_str().unwrap_or_default().to_string();
    item["collection"] = json!(format!("{collection}-{}", layout.suffix()));
    if layout == ZarrLayout::EopfV2 {
        // the counts carry BOA_ADD_OFFSET, as from baseline 04.00 on
        item["properties"]["s2:processing_baseline"] = json!("05.10");
    }
    let mut assets = Map::new();
    if let Some(cog_assets) = item["assets"].as_object() {
        for (band, a) in cog_assets {
            let mut z = a.clone();
            let res = a["gsd"].as_f64().unwrap_or(10.0);
            z["href"] = json!(band_href(&id, layout, band, res));
            z["type"] = json!("application/vnd+zarr");
            if let Some(o) = z.as_object_mut() {
                o.remove("proj:bbox");
            }
            assets.insert(band.to_ascii_lowercase(), z);
        }
    }
    item["assets"] = Value::Object(assets);
    item
}

fn parse<T: serde::de::DeserializeOwned>(p: &Path, v: Value) -> std::result::Result<T, Problem> {
    serde_json::from_value(v).map_err(|e| Problem::because(p.display().to_string(), e))
}

/// The items folder of `layout` in a world folder.
fn items_dir(world: &Path, layout: ZarrLayout) -> PathBuf {
    world.join(format!("items-{}", layout.suffix()))
}

/// The collection file of `layout` in a world folder.
fn collection_path(world: &Path, layout: ZarrLayout) -> PathBuf {
    world.join(format!("collection-{}.json", layout.suffix()))
}

/// Writes the Zarr items and collections of a world whose COG items are
/// `items` and collection `collection`.
pub(crate) fn write_catalogs(out: &Path, collection: &Value, items: &[Value]) -> Result<()> {
    for layout in ZarrLayout::ALL {
        let dir = items_dir(out, layout);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut w = Writer::default();
        for item in items {
            let z = zarr_item(item, layout);
            let id = z["id"].as_str().unwrap_or_default().to_string();
            w.json(&dir.join(format!("{id}.json")), &z)?;
        }
        let mut c = collection.clone();
        let id = format!(
            "{}-{}",
            c["id"].as_str().unwrap_or_default(),
            layout.suffix()
        );
        c["id"] = json!(id);
        c["title"] = json!(format!(
            "{} as Zarr ({})",
            c["title"].as_str().unwrap_or_default(),
            match layout {
                ZarrLayout::EopfV2 => "EOPF-like v2, consolidated",
                ZarrLayout::GeoZarrV3 => "GeoZarr-like v3, sharded",
            }
        ));
        w.json(&collection_path(out, layout), &c)?;
    }
    Ok(())
}

impl World {
    /// Whether the world has its Zarr stores and their collections (a
    /// recipe with `zarr = true`, `tilestack world --zarr`).
    pub fn has_zarr(&self) -> bool {
        ZarrLayout::ALL
            .iter()
            .all(|&l| collection_path(self.dir(), l).is_file())
    }

    /// The STAC collection and items of one Zarr layout (asset hrefs
    /// relative to the item files), items in time order; `None` when the
    /// world has no Zarr stores.
    ///
    /// # Errors
    /// [`Error::NotAWorld`] when a file is unreadable or not STAC.
    pub fn zarr_catalog(
        &self,
        layout: ZarrLayout,
    ) -> Result<Option<(stac::Collection, Vec<stac::Item>)>> {
        let cpath = collection_path(self.dir(), layout);
        if !cpath.is_file() {
            return Ok(None);
        }
        let broken = |p: Problem| Error::NotAWorld {
            path: self.dir().to_path_buf(),
            message: p.message,
            source: p.source,
        };
        let read = |p: &Path| -> std::result::Result<Value, Problem> {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Problem::because(format!("cannot read {}", p.display()), e))?;
            serde_json::from_str(&text).map_err(|e| Problem::because(p.display().to_string(), e))
        };
        let c: stac::Collection = parse(&cpath, read(&cpath).map_err(broken)?).map_err(broken)?;
        let mut items = Vec::new();
        for s in &self.manifest().scenes {
            let p = items_dir(self.dir(), layout).join(format!("{}.json", s.id));
            items.push(parse(&p, read(&p).map_err(broken)?).map_err(broken)?);
        }
        Ok(Some((c, items)))
    }
}
