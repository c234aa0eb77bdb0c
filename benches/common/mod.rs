//! What the benches share: the Oakland bench dataset config.

use tilestack::DatasetConfig;
use tilestack::demo::{Recipe, World};

/// How big a bench run is: the full figures (`--bench`) or a smoke pass.
pub(crate) struct Setup {
    /// The full run (`cargo bench`), not the smoke pass of `cargo test`.
    pub(crate) full: bool,
    /// Places sampled in granule A.
    pub(crate) places: usize,
    /// Days from August 1.
    pub(crate) days: u32,
}

impl Setup {
    /// The full setup under `--bench`, else a quick one.
    pub(crate) fn from_args(full_places: usize, full_days: u32) -> Setup {
        let full = std::env::args().any(|a| a == "--bench");
        if full {
            Setup {
                full,
                places: full_places,
                days: full_days,
            }
        } else {
            Setup {
                full,
                places: 4,
                days: 4,
            }
        }
    }
}

/// The bench dataset: `s.places` random places 2 km inside granule A of
/// the Oakland world served at `url`, bands B04 B03 B02 B08 B11, 256 px,
/// August 1 to `s.days`, batches of 4; `threads` pins the loader runtime.
#[allow(dead_code)] // not every bench uses it
pub(crate) fn config(
    dir: &std::path::Path,
    url: &str,
    s: &Setup,
    threads: Option<usize>,
) -> DatasetConfig {
    config_with(dir, url, s, threads, "")
}

/// [`config`] with `extra` TOML after it (`[[inputs]]`, `[[labels]]`).
#[allow(dead_code)] // not every bench adds to it
pub(crate) fn config_with(
    dir: &std::path::Path,
    url: &str,
    s: &Setup,
    threads: Option<usize>,
    extra: &str,
) -> DatasetConfig {
    let world = World::cached(&Recipe::oakland()).expect("the Oakland world");
    let granule_a = world
        .manifest()
        .scenes
        .iter()
        .find(|sc| sc.granule == "A")
        .expect("a granule-A scene")
        .id
        .clone();
    let items = world.items().expect("the world's items");
    let bbox = items
        .iter()
        .find(|it| it.id == granule_a)
        .and_then(|it| it.bbox)
        .expect("the scene's bbox");
    let (lat_in, lon_in) = (2000.0 / 111_320.0, 2000.0 / (111_320.0 * 0.79));
    let (w, so, e, n) = (
        bbox.xmin() + lon_in,
        bbox.ymin() + lat_in,
        bbox.xmax() - lon_in,
        bbox.ymax() - lat_in,
    );
    let threads = threads.map_or(String::new(), |t| {
        format!("threads = {t}\nloads_at_once = {}", 2 * t)
    });
    let text = format!(
        r#"seed = 20190801
[catalog]
stac = {url:?}
collection = "sentinel-2-l2a"
[stack]
bands = ["B04", "B03", "B02", "B08", "B11"]
tile_size = 256
[time]
range = "2019-08-01/2019-08-{days:02}"
[sampler]
kind = "random"
bbox = [{w}, {so}, {e}, {n}]
count = {places}
[filters]
min_days_with_data = 0
[loader]
batch_size = 4
prefetch_batches = 3
budget_bytes = 4294967296
cache_bytes = 8589934592
{threads}
{extra}
"#,
        days = s.days,
        places = s.places,
    );
    let p = dir.join(format!("bench-{}-{}.toml", threads.len(), extra.len()));
    std::fs::write(&p, text).expect("writing the config");
    DatasetConfig::from_file(&p).expect("the bench config")
}
