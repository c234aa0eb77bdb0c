//! Fixture helpers shared by the integration tests.

use std::path::PathBuf;
use std::sync::OnceLock;

use tilestack::demo::{Recipe, World};

/// A smaller Oakland world (768 px scenes, 256 px COG tiles) so debug-mode
/// tests generate it in seconds; cached under `target/` across test runs.
pub(crate) fn small_recipe() -> Recipe {
    let mut r = Recipe::oakland();
    r.name = "oakland-small".into();
    r.scene_size = 768;
    r.cog_tile_size = 256;
    r
}

/// [`small_recipe`] with each scene also as Zarr v2 and v3 stores (and
/// their collections): a world of its own, cached beside the small one.
pub(crate) fn small_zarr_recipe() -> Recipe {
    let mut r = small_recipe();
    r.name = "oakland-small-zarr".into();
    r.zarr = true;
    r
}

/// The small world with Zarr stores, generated once per machine.
pub(crate) fn small_zarr_world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        World::cached_in(&small_zarr_recipe(), &target_dir().join("test-worlds"))
            .expect("generating the small test world with Zarr stores")
    })
}

pub(crate) fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// The small world, generated once per machine (per recipe version).
pub(crate) fn small_world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        World::cached_in(&small_recipe(), &target_dir().join("test-worlds"))
            .expect("generating the small test world")
    })
}

/// Python with rasterio, rio-cogeo and pyproj (`tests/run.sh` installs them from
/// `tests/py/requirements.txt`). Missing, the reference tests fail saying so:
/// they never skip.
pub(crate) fn python() -> &'static str {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import rasterio, rio_cogeo, pyproj"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with rasterio, rio-cogeo and pyproj is required: run ./tests/run.sh, which \
         installs tests/py/requirements.txt, or pip install rasterio rio-cogeo pyproj"
    );
    "python3"
}

/// A day of August 2019 (the small world's month).
pub(crate) fn day(d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2019, 8, d).expect("a day of August")
}

/// A reader with default retries and a 1 GiB cache.
pub(crate) fn cog_reader() -> tilestack::CogReader {
    tilestack::CogReader::new(
        tilestack::HttpRangeClient::new(tilestack::fetch::RetryConfig::default())
            .expect("an HTTP client"),
        tilestack::cog::TileCache::new(1 << 30),
    )
}

/// Runs the reference script `script` (a path under `tests/py/`) with
/// [`python`] and `args`; its standard output, once it has exited 0 (else
/// the test fails with its output and errors).
pub(crate) fn python_script<I, S>(script: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let o = std::process::Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Runs tests/py/check_shard.py over the shards at `out` against the
/// reference stacks in `refs` (what the Rust side read back); its output,
/// once it has passed.
pub(crate) fn check_shards_in_python(out: &std::path::Path, refs: &std::path::Path) -> String {
    String::from_utf8_lossy(&python_script("check_shard.py", [out, refs])).to_string()
}

/// `points` (lon, lat) as a sampler's points CSV, ids `p0`, `p1`, …
pub(crate) fn write_points(path: &std::path::Path, points: &[[f64; 2]]) {
    let csv: String = std::iter::once("lon,lat,id\n".to_string())
        .chain(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{},{},p{i}\n", p[0], p[1])),
        )
        .collect();
    std::fs::write(path, csv).unwrap();
}
