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
