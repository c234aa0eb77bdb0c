//! The fuzz targets' bodies: each feeds arbitrary bytes to one input path of
//! tilestack, through its public API, and ignores the `Result` — an error is
//! the right answer to bad input; a panic, an abort, a hang or unbounded
//! memory is the bug. Shared by the libFuzzer targets (`fuzz_targets/`,
//! nightly) and the stable corpus replay (`tests/it/fuzz_replay.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tilestack::cog::TileCache;
use tilestack::fetch::RetryConfig;
use tilestack::geo::{GridSpec, Mask, PixelWindow};
use tilestack::shard::ShardIndex;
use tilestack::stac::{load_snapshot, scenes_from_items};
use tilestack::{BandName, CogReader, DatasetConfig, Epsg, HttpRangeClient, Resolution};

/// Under libFuzzer: a panic hook that prints without aborting, so that a
/// panic tilestack contains (a third-party parser's, turned into an error)
/// is not reported as a crash. A panic that escapes still is: libFuzzer's
/// harness aborts on it.
pub(crate) fn init() {
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A scratch file of this process and thread holding `data`.
fn scratch(ext: &str, data: &[u8]) -> Option<PathBuf> {
    let p = std::env::temp_dir().join(format!(
        "tilestack-fuzz-{}-{:?}.{ext}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&p, data).ok()?;
    Some(p)
}

/// A TIFF: its header (every IFD), then a window at each corner of up to
/// three IFDs, through `CogReader` over `file://` (the same code as HTTP
/// Range reads, below the fetch).
pub(crate) fn tiff(data: &[u8]) {
    let Some(path) = scratch("tif", data) else {
        return;
    };
    let href = format!("file://{}", path.display());
    let retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    let Ok(client) = HttpRangeClient::new(retry) else {
        return;
    };
    let reader = CogReader::new(client, TileCache::new(64 << 20));
    runtime().block_on(async {
        let Ok(h) = reader.header(&href).await else {
            return;
        };
        for (i, ifd) in h.ifds.iter().enumerate().take(3) {
            let (w, hh) = (ifd.width.min(48), ifd.height.min(48));
            for (c, r) in [(0, 0), (ifd.width - w, ifd.height - hh)] {
                let _ = reader
                    .read_window(&href, i, PixelWindow::new(c, r, w, hh))
                    .await;
            }
        }
    });
}

/// STAC item JSON (an item, an array or an ItemCollection, as snapshots
/// are), then scenes for bands named by key, band name and common name.
pub(crate) fn stac_item(data: &[u8]) {
    let Some(path) = scratch("json", data) else {
        return;
    };
    let Ok(items) = load_snapshot(&path) else {
        return;
    };
    for bands in ["B04,B08", "red,nir", "SCL", "visual,VV"] {
        if let Ok(bands) = BandName::parse_list(bands) {
            let _ = scenes_from_items(&items, &bands);
        }
    }
}

/// GeoJSON, as a mask, burned into a 64 px tile on a day and undated.
pub(crate) fn geojson_mask(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mask) = Mask::from_geojson_str(text, "fuzz.geojson") else {
        return;
    };
    let (Ok(epsg), Ok(res)) = (Epsg::new(32610), Resolution::new(10.0)) else {
        return;
    };
    let Ok(grid) = GridSpec::tile_around(epsg, 565_000.0, 4_185_000.0, 64, res) else {
        return;
    };
    let day = chrono::NaiveDate::from_ymd_opt(2019, 8, 8);
    let _ = mask.rasterize(&grid, None);
    let _ = mask.rasterize(&grid, day);
}

/// A dataset config (TOML).
pub(crate) fn dataset_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = DatasetConfig::from_toml_str(text, Path::new("fuzz.toml"));
    }
}

/// A shard index (`index.json`).
pub(crate) fn shard_index(data: &[u8]) {
    let _ = ShardIndex::from_json(data, "index.json");
}

/// A Zarr store: the input up to its first NUL byte is an array's metadata
/// document, the rest a stored object. The document is parsed as a v3
/// `zarr.json`, a v2 `.zarray` and a consolidated `.zmetadata`; the rest
/// as a shard index (both ends, both byte orders, with and without CRC-32C)
/// and a Blosc buffer; then both are written as a store (`zarr.json` or
/// `.zarray`, and the object as chunk/shard `(0, 0)`) and a window at each
/// corner read through `ZarrReader` over `file://`.
pub(crate) fn zarr_store(data: &[u8]) {
    use tilestack::zarr::{ArrayMeta, Consolidated, ZarrReader, blosc, parse_shard_index};
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (doc, rest) = (&data[..cut], data.get(cut + 1..).unwrap_or_default());
    let _ = Consolidated::from_v2("fuzz.zarr", doc);
    let json: Option<serde_json::Value> = serde_json::from_slice(doc).ok();
    let mut v3 = false;
    if let Some(v) = &json {
        let _ = Consolidated::from_v3_root(v).array("fuzz.zarr", "a");
        for m in [
            ArrayMeta::from_v3("fuzz.zarr", "a", v),
            ArrayMeta::from_v2("fuzz.zarr", "a", v, Some(v)),
        ]
        .into_iter()
        .flatten()
        {
            v3 |= m.format == tilestack::zarr::ZarrFormat::V3;
            let _ = m.cf();
            let shape = m.read_chunk_shape().to_vec();
            let _ = m.chunk_key(&vec![0; shape.len()]);
        }
    }
    let n = rest.len() / 16;
    for crc in [false, true] {
        for big in [false, true] {
            let at = (rest.len() as u64).saturating_sub(16 * n as u64)..rest.len() as u64;
            let _ = parse_shard_index(rest, n, big, crc, Some(rest.len() as u64), at);
        }
    }
    let _ = blosc::decompress(rest, 1 << 20);
    let Some(json) = json else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "tilestack-fuzz-zarr-{}-{:?}.zarr",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let array = dir.join("a");
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(array.join("c").join("0"))?;
        if v3 {
            std::fs::write(array.join("zarr.json"), serde_json::to_vec(&json)?)?;
            std::fs::write(array.join("c").join("0").join("0"), rest)?;
        } else {
            std::fs::write(array.join(".zarray"), serde_json::to_vec(&json)?)?;
            std::fs::write(array.join("0.0"), rest)?;
            std::fs::write(array.join("0"), rest)?;
        }
        Ok(())
    })();
    if written.is_err() {
        return;
    }
    let retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    let Ok(client) = HttpRangeClient::new(retry) else {
        return;
    };
    let reader = ZarrReader::new(client, TileCache::new(64 << 20));
    let href = format!("file://{}/a", dir.display());
    runtime().block_on(async {
        let Ok(m) = reader.array(&href).await else {
            return;
        };
        let _ = reader.georef(&href).await;
        let nd = m.shape.len();
        if nd < 2 {
            return;
        }
        let dim = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let (h, w) = (dim(m.shape[nd - 2]), dim(m.shape[nd - 1]));
        let (ww, hh) = (w.min(48), h.min(48));
        for (c, r) in [(0, 0), (w - ww, h - hh)] {
            let _ = reader
                .read_window(&href, 0, PixelWindow::new(c, r, ww, hh))
                .await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
