//! COG window reads over HTTP Range: only the needed tiles, cached, de-duplicated,
//! and equal to what GDAL reads.

use std::collections::BTreeSet;

use tilestack::cog::TileCache;
use tilestack::demo::WorldServer;
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::{CogReader, HttpRangeClient};

use crate::util::{python, small_world};

const TILE_BYTES: u64 = 256 * 256 * 4;

fn reader(client: HttpRangeClient, budget: u64) -> CogReader {
    CogReader::new(client, TileCache::new(budget))
}

fn client() -> HttpRangeClient {
    HttpRangeClient::new(RetryConfig::default()).unwrap()
}

fn band_rel(scene: usize, band: &str) -> String {
    let id = &small_world().manifest().scenes[scene].id;
    format!("data/{id}/{band}.tif")
}

fn band_url(server: &WorldServer, scene: usize, band: &str) -> String {
    format!("{}/{}", server.url(), band_rel(scene, band))
}

/// `bytes=a-b` as the `Range` header reads for the half-open `r`.
fn range_header(r: &std::ops::Range<u64>) -> String {
    format!("bytes={}-{}", r.start, r.end - 1)
}

fn tile_ranges_requested(server: &WorldServer) -> BTreeSet<String> {
    server
        .stats()
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/data/"))
        .filter_map(|l| l.range)
        .collect()
}

#[tokio::test]
async fn window_inside_one_tile_fetches_one_tile() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 0, "B04");
    let r = reader(client(), 1 << 30);
    let h = r.header(&url).await.unwrap();
    assert_eq!(
        (h.width, h.height, h.tile_width, h.tile_height),
        (768, 768, 256, 256)
    );
    assert_eq!(h.nodata, Some(0.0));
    // granule A of the small world: its upper left is the centroid's UTM
    // 10N point (558975.99, 4184945.86) less 0.55 of the 7680 m scene east
    // and plus 0.45 of it north, rounded to 60 m (the recipe's rule); GDAL
    // reads the same (`rasterio.open(B04.tif).transform` is (10, 0, 554760,
    // 0, -10, 4188420), CRS EPSG:32610)
    assert_eq!(h.epsg, Some(tilestack::Epsg::new(32610).unwrap()));
    assert_eq!(
        h.transform,
        Some(tilestack::geo::GeoTransform::north_up(
            554_760.0,
            4_188_420.0,
            10.0
        ))
    );
    assert!(h.ifds.len() > 1, "overviews expected");

    server.stats().reset();
    let px = r
        .read_window(&url, 0, PixelWindow::new(300, 20, 100, 100))
        .await
        .unwrap();
    assert_eq!(px.dim(), (100, 100));
    assert_eq!(server.stats().data_requests(), 1);
    let want = h.ifds[0].tile_range(1, 0).unwrap();
    assert_eq!(
        tile_ranges_requested(&server),
        BTreeSet::from([range_header(&want)])
    );
    assert_eq!(server.stats().data_bytes(), want.end - want.start);
}

#[tokio::test]
async fn window_over_four_tiles_fetches_exactly_those_tiles() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 1, "B04");
    let tiles = [(0, 1), (1, 1), (0, 2), (1, 2)];

    // Without coalescing: one request per tile, exactly its bytes.
    let r = reader(client().with_coalesce_gap(0), 1 << 30);
    let h = r.header(&url).await.unwrap();
    server.stats().reset();
    r.read_window(&url, 0, PixelWindow::new(200, 500, 100, 100))
        .await
        .unwrap();
    let want: Vec<_> = tiles
        .iter()
        .map(|&(x, y)| h.ifds[0].tile_range(x, y).unwrap())
        .collect();
    assert_eq!(server.stats().data_requests(), 4);
    assert_eq!(
        tile_ranges_requested(&server),
        want.iter().map(range_header).collect::<BTreeSet<_>>()
    );
    assert_eq!(
        server.stats().data_bytes(),
        want.iter().map(|r| r.end - r.start).sum::<u64>()
    );

    // Default coalescing (touching ranges only): one request per row of
    // tiles, since a row's tiles are contiguous in the file; the same bytes.
    let r = reader(client(), 1 << 30);
    r.header(&url).await.unwrap();
    server.stats().reset();
    r.read_window(&url, 0, PixelWindow::new(200, 500, 100, 100))
        .await
        .unwrap();
    let rows = [want[0].start..want[1].end, want[2].start..want[3].end];
    assert_eq!(
        (want[0].end, want[2].end),
        (want[1].start, want[3].start),
        "row tiles touch"
    );
    assert_eq!(server.stats().data_requests(), 2);
    assert_eq!(
        tile_ranges_requested(&server),
        rows.iter().map(range_header).collect::<BTreeSet<_>>()
    );
    assert_eq!(
        server.stats().data_bytes(),
        want.iter().map(|r| r.end - r.start).sum::<u64>()
    );

    // A 1 MiB gap (object_store's default): one request spanning all four, more bytes.
    let r = reader(client().with_coalesce_gap(1 << 20), 1 << 30);
    r.header(&url).await.unwrap();
    server.stats().reset();
    r.read_window(&url, 0, PixelWindow::new(200, 500, 100, 100))
        .await
        .unwrap();
    let lo = want.iter().map(|r| r.start).min().unwrap();
    let hi = want.iter().map(|r| r.end).max().unwrap();
    assert_eq!(server.stats().data_requests(), 1);
    assert_eq!(
        tile_ranges_requested(&server),
        BTreeSet::from([range_header(&(lo..hi))])
    );
}

#[tokio::test]
async fn warm_reads_make_no_requests() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 2, "B04");
    let r = reader(client(), 1 << 30);
    let first = r
        .read_window(&url, 0, PixelWindow::new(100, 100, 300, 300))
        .await
        .unwrap();
    assert!(server.stats().data_requests() > 0);
    server.stats().reset();
    let again = r
        .read_window(&url, 0, PixelWindow::new(100, 100, 300, 300))
        .await
        .unwrap();
    assert_eq!(
        server.stats().data_requests(),
        0,
        "{:?}",
        server.stats().log()
    );
    assert!(
        first
            .iter()
            .zip(again.iter())
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
    );
    assert!(r.cache().metrics().cache_hits() >= 4);
}

#[tokio::test]
async fn concurrent_reads_of_one_tile_share_one_fetch() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 3, "B04");
    // How many requests a header costs, measured on a separate reader.
    let h = reader(client(), 1 << 30).header(&url).await.unwrap();
    let header_requests = server.stats().data_requests();
    server.stats().reset();

    let r = reader(client(), 1 << 30);
    let reads = (0..8).map(|i| {
        let r = r.clone();
        let url = url.clone();
        tokio::spawn(async move {
            r.read_window(&url, 0, PixelWindow::new(10 + i, 10, 50, 50))
                .await
        })
    });
    for res in futures::future::join_all(reads).await {
        assert_eq!(res.unwrap().unwrap().dim(), (50, 50));
    }
    let tile = range_header(&h.ifds[0].tile_range(0, 0).unwrap());
    let log = server.stats().log();
    assert_eq!(
        log.iter()
            .filter(|l| l.range.as_ref() == Some(&tile))
            .count(),
        1,
        "{log:?}"
    );
    // One header parse shared by all eight, plus the one tile.
    assert_eq!(
        server.stats().data_requests(),
        header_requests + 1,
        "{log:?}"
    );
}

#[tokio::test]
async fn tiny_cache_stays_within_budget() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 4, "B04");
    let r = reader(client(), TILE_BYTES);
    for round in 0..2 {
        for y in 0..3 {
            for x in 0..3 {
                let px = r
                    .read_window(&url, 0, PixelWindow::new(x * 256 + 5, y * 256 + 5, 20, 20))
                    .await
                    .unwrap();
                assert_eq!(px.dim(), (20, 20));
                assert!(
                    r.cache().bytes_used() <= r.cache().budget(),
                    "round {round}"
                );
            }
        }
    }
    // 9 tiles, each read for its rows 5..25 (so held partly inflated, smaller
    // than a whole tile): only a few fit, the rest were evicted.
    let m = r.cache().metrics();
    assert!((1..9).contains(&r.cache().len()), "{}", r.cache().len());
    assert!(m.evictions() >= 10, "{}", m.evictions());
    assert_eq!(m.cache_misses(), m.evictions() + r.cache().len() as u64);
}

#[tokio::test]
async fn windows_match_gdal() {
    let py = python();
    let server = WorldServer::start(small_world()).await.unwrap();
    let r = reader(client(), 1 << 30);
    let n = small_world().manifest().scenes.len();
    // (scene, band, ifd, col, row, width, height): tile-crossing, edge (past the
    // image: NaN / GDAL fill 0), overviews, and the uint8 20 m SCL band.
    let mut cases: Vec<(usize, &str, usize, usize, usize, usize, usize)> = (0..n)
        .map(|s| (s, "B04", 0, 230 + s, 240, 60, 50))
        .collect();
    cases.extend([
        (0, "B08", 0, 700, 700, 100, 100),
        (1, "B02", 1, 100, 100, 200, 200),
        (2, "B11", 0, 0, 0, 384, 384),
        (3, "SCL", 0, 250, 250, 134, 40),
        (5, "B03", 0, 0, 0, 768, 768),
    ]);
    let req: Vec<serde_json::Value> = cases
        .iter()
        .map(|&(s, b, i, c, row, w, h)| {
            let path = small_world().dir().join(band_rel(s, b));
            serde_json::json!([path, i, c, row, w, h])
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/read_window.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(serde_json::to_string(&req).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gdal: Vec<Vec<Vec<f64>>> = serde_json::from_slice(&out.stdout).unwrap();
    let mut nodata_seen = 0;
    for (&(s, b, i, c, row, w, h), want) in cases.iter().zip(&gdal) {
        let url = band_url(&server, s, b);
        let got = r
            .read_window(&url, i, PixelWindow::new(c, row, w, h))
            .await
            .unwrap();
        assert_eq!(got.dim(), (want.len(), want[0].len()));
        for (y, want_row) in want.iter().enumerate() {
            for (x, &g) in want_row.iter().enumerate() {
                let v = got[(y, x)];
                if g == 0.0 {
                    nodata_seen += 1;
                    assert!(v.is_nan(), "{b} scene {s} ifd {i} ({x},{y}): {v} vs GDAL 0");
                } else {
                    assert_eq!(f64::from(v), g, "{b} scene {s} ifd {i} ({x},{y})");
                }
            }
        }
    }
    assert!(nodata_seen > 0, "the edge window should include nodata");
}

#[tokio::test]
async fn missing_file_error_names_the_url() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = format!("{}/data/no-such-scene/B04.tif", server.url());
    let r = reader(client(), 1 << 20);
    let err = r
        .read_window(&url, 0, PixelWindow::new(0, 0, 10, 10))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("404"), "{msg}");
}

#[tokio::test]
async fn file_hrefs_read_the_same_pixels_without_a_server() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let over_http = reader(client(), 1 << 30)
        .read_window(
            &band_url(&server, 3, "B04"),
            0,
            PixelWindow::new(250, 250, 300, 300),
        )
        .await
        .unwrap();
    server.shutdown().await;
    let path = small_world().dir().join(band_rel(3, "B04"));
    let href = format!("file://{}", path.display());
    let local = reader(client(), 1 << 30);
    let px = local
        .read_window(&href, 0, PixelWindow::new(250, 250, 300, 300))
        .await
        .unwrap();
    assert!(
        px.iter()
            .zip(over_http.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(local.client().metrics().requests() >= 2);
    let missing = format!("file://{}/nope.tif", small_world().dir().display());
    let e = local
        .read_window(&missing, 0, PixelWindow::new(0, 0, 8, 8))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.tif"), "{e}");
}

#[tokio::test]
async fn a_partly_inflated_tile_is_completed_without_a_fetch() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 2, "B08");
    let r = reader(client(), 1 << 30);
    r.header(&url).await.unwrap();
    server.stats().reset();
    // rows 20..120 of tile (0, 0): inflated only down to row 120 (+ margin)
    let top = r
        .read_window(&url, 0, PixelWindow::new(0, 20, 100, 100))
        .await
        .unwrap();
    assert_eq!(server.stats().data_requests(), 1);
    assert!(
        r.cache().bytes_used() < TILE_BYTES,
        "the tile should be held partly decoded, {} bytes",
        r.cache().bytes_used()
    );
    // rows 150..250 of the same tile: decoded from the kept bytes, no request
    let low = r
        .read_window(&url, 0, PixelWindow::new(0, 150, 100, 100))
        .await
        .unwrap();
    assert_eq!(server.stats().data_requests(), 1);
    let fresh = reader(client(), 1 << 30);
    let bits = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&low),
        bits(
            &fresh
                .read_window(&url, 0, PixelWindow::new(0, 150, 100, 100))
                .await
                .unwrap()
        )
    );
    assert_eq!(
        bits(&top),
        bits(
            &fresh
                .read_window(&url, 0, PixelWindow::new(0, 20, 100, 100))
                .await
                .unwrap()
        )
    );
    assert!(low.iter().any(|v| v.is_finite()));
}

#[tokio::test]
async fn a_persisted_header_opens_the_file_with_zero_header_requests() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = band_url(&server, 3, "B04");
    let d = tempfile::tempdir().unwrap();
    let store = || tilestack::cog::HeaderStore::open(d.path()).unwrap();
    let first = reader(client(), 1 << 30).with_header_store(store());
    let want = first
        .read_window(&url, 0, PixelWindow::new(300, 20, 100, 100))
        .await
        .unwrap();
    assert_eq!(store().len(), 1);

    // a new reader (a new process): only the tile is requested
    server.stats().reset();
    let second = reader(client(), 1 << 30).with_header_store(store());
    let got = second
        .read_window(&url, 0, PixelWindow::new(300, 20, 100, 100))
        .await
        .unwrap();
    assert_eq!(
        server.stats().data_requests(),
        1,
        "{:?}",
        server.stats().log()
    );
    let bits = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want));
    // the persisted header carries the version the server showed the first
    // reader: the file's length, and its ETag
    let h = second.header(&url).await.unwrap();
    let live = first.header(&url).await.unwrap();
    let len = std::fs::metadata(small_world().dir().join(band_rel(3, "B04")))
        .unwrap()
        .len();
    let etag = reqwest::Client::new()
        .head(&url)
        .send()
        .await
        .unwrap()
        .headers()
        .get("etag")
        .expect("the demo server sends ETags")
        .to_str()
        .unwrap()
        .to_string();
    let want = tilestack::fetch::ObjectVersion {
        size: Some(len),
        etag: Some(etag),
    };
    assert_eq!((&h.version, &live.version), (&want, &want));
}

#[tokio::test]
async fn a_file_changed_under_a_persisted_header_is_an_error_then_reread() {
    let d = tempfile::tempdir().unwrap();
    let cog = d.path().join("a.tif");
    let world = small_world().dir().to_path_buf();
    let (old, new) = (
        world.join(band_rel(0, "B04")),
        world.join(band_rel(5, "B08")),
    );
    assert_ne!(
        std::fs::metadata(&old).unwrap().len(),
        std::fs::metadata(&new).unwrap().len()
    );
    std::fs::copy(&old, &cog).unwrap();
    let href = format!("file://{}", cog.display());
    let store = || tilestack::cog::HeaderStore::open(d.path().join("headers")).unwrap();
    reader(client(), 1 << 30)
        .with_header_store(store())
        .read_window(&href, 0, PixelWindow::new(0, 0, 300, 300))
        .await
        .unwrap();
    std::fs::copy(&new, &cog).unwrap(); // replaced under the persisted header

    let r = reader(client(), 1 << 30).with_header_store(store());
    let err = r
        .read_window(&href, 0, PixelWindow::new(0, 0, 300, 300))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&href) && err.contains("changed"), "{err}");
    assert!(store().is_empty(), "the stale entry is dropped");
    // the next read fetches the header again and reads the new file
    let again = r
        .read_window(&href, 0, PixelWindow::new(0, 0, 300, 300))
        .await
        .unwrap();
    let fresh = reader(client(), 1 << 30)
        .read_window(
            &format!("file://{}", new.display()),
            0,
            PixelWindow::new(0, 0, 300, 300),
        )
        .await
        .unwrap();
    let bits = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&again), bits(&fresh));
    assert_eq!(store().len(), 1);
}

/// Sampling the cached tiles directly (`window_tiles` + `TileWindow::nearest`)
/// equals reading the window and warping it, bit for bit: inside the image,
/// across tile seams, over the image's edges, up- and downsampled, for the
/// uint16 (nodata 0) and uint8 bands — and it fetches nothing more.
#[tokio::test]
async fn sampling_tiles_equals_window_then_warp() {
    use tilestack::geo::{GeoTransform, GridSpec, Resampling, source_window, warp};
    let server = WorldServer::start(small_world()).await.unwrap();
    let r = reader(client(), 1 << 30);
    let mut edge_cases = 0;
    for band in ["B04", "B11", "SCL"] {
        let url = band_url(&server, 0, band);
        let h = r.header(&url).await.unwrap();
        let (epsg, t) = (h.epsg.unwrap(), h.transform.unwrap());
        // (target origin in source pixels, target resolution as a multiple
        // of the source's, target size); the image is 768 (10 m) or 384 px.
        let k = h.width as f64 / 768.0;
        for (ox, oy, res, n) in [
            (100.3, 90.7, 1.0, 64),   // inside
            (240.5, 250.2, 1.0, 40),  // across the tile seams at 256
            (-20.0, 700.0, 1.0, 120), // over the left and bottom edges
            (300.0, 300.0, 3.0, 50),  // downsampled
            (5.5, 5.5, 0.3, 90),      // upsampled
        ] {
            let (ox, oy, res) = (ox * k, oy * k, res * t.dx);
            let x0 = t.x0 + ox * t.dx;
            let y0 = t.y0 + oy * t.dy;
            let dst = GridSpec {
                epsg,
                transform: GeoTransform::north_up(x0, y0, res),
                width: n,
                height: n,
            };
            let (c0, r0, c1, r1) = source_window(&t, epsg, &dst, Resampling::Nearest).unwrap();
            let (c0, r0) = (c0.max(0), r0.max(0));
            let (cw, ch) = ((c1 - c0).max(0) as usize, (r1 - r0).max(0) as usize);
            let wt = GeoTransform {
                x0: t.x0 + c0 as f64 * t.dx,
                y0: t.y0 + r0 as f64 * t.dy,
                ..t
            };
            let (c0, r0) = (c0 as usize, r0 as usize);
            let win = r
                .read_window(&url, 0, PixelWindow::new(c0, r0, cw, ch))
                .await
                .unwrap();
            let want = warp(win.view(), &wt, epsg, &dst, Resampling::Nearest).unwrap();
            server.stats().reset();
            let tiles = r
                .window_tiles(&url, 0, PixelWindow::new(c0, r0, cw, ch))
                .await
                .unwrap();
            assert_eq!(
                server.stats().requests(),
                0,
                "the window's tiles are cached"
            );
            let got = tiles.expect("window meets the image").nearest(&wt, &dst);
            let bits = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{band} at ({ox}, {oy}) res {res}");
            assert!(got.iter().any(|v| v.is_finite()), "{band}: values expected");
            if got.iter().any(|v| v.is_nan()) {
                edge_cases += 1;
            }
        }
    }
    assert!(
        edge_cases >= 3,
        "the edge windows must have NaN outside the image"
    );
}

/// Rewrites a classic little-endian TIFF so that its last IFD points back to
/// its first: a chain that never ends.
fn loop_ifds(mut b: Vec<u8>) -> Vec<u8> {
    assert_eq!(&b[..4], b"II*\0", "a classic little-endian TIFF");
    let u32_at =
        |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    let first = u32_at(&b, 4);
    let mut at = first;
    loop {
        let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let next_at = at + 2 + 12 * n;
        match u32_at(&b, next_at) {
            0 => {
                b[next_at..next_at + 4].copy_from_slice(&(first as u32).to_le_bytes());
                return b;
            }
            next => at = next,
        }
    }
}

/// The error of reading `path`'s header (within 20 s: no endless read).
async fn header_error(path: &std::path::Path) -> String {
    let href = format!("file://{}", path.display());
    let r = reader(client(), 1 << 30);
    tokio::time::timeout(std::time::Duration::from_secs(20), r.header(&href))
        .await
        .expect("the header read ends")
        .expect_err("a malformed header")
        .chain()
}

#[tokio::test]
async fn an_ifd_chain_that_loops_is_an_error_not_an_endless_read() {
    let src = small_world().dir().join(band_rel(3, "B04"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("loop.tif");
    std::fs::write(&bad, loop_ifds(std::fs::read(&src).unwrap())).unwrap();
    let msg = header_error(&bad).await;
    assert!(
        msg.contains("loop.tif") && msg.contains("IFD chain loops"),
        "{msg}"
    );
}

/// The first IFD's entries of a classic little-endian TIFF: (entry byte
/// offset, tag, type, count).
fn first_ifd_entries(b: &[u8]) -> Vec<(usize, u16, u16, u32)> {
    assert_eq!(&b[..4], b"II*\0", "a classic little-endian TIFF");
    let at = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    (0..n)
        .map(|i| {
            let e = at + 2 + 12 * i;
            let u16_at = |k: usize| u16::from_le_bytes([b[k], b[k + 1]]);
            let count = u32::from_le_bytes([b[e + 4], b[e + 5], b[e + 6], b[e + 7]]);
            (e, u16_at(e), u16_at(e + 2), count)
        })
        .collect()
}

/// What the fuzzer found in async-tiff 0.4 (its corpus in fuzz/corpus/tiff
/// holds the originals): an entry declaring billions of values made it
/// allocate tens of GB and abort the process; an unknown tag type and a
/// GeoKeyDirectory of another version made it panic. Each is now an error
/// naming the file, before async-tiff allocates anything.
#[tokio::test]
async fn hostile_tiff_entries_are_errors_naming_the_file_not_aborts_or_panics() {
    let src = std::fs::read(small_world().dir().join(band_rel(3, "B04"))).unwrap();
    let entries = first_ifd_entries(&src);
    let dir = tempfile::tempdir().unwrap();
    let (tile_offsets, _, _, _) = *entries.iter().find(|e| e.1 == 324).expect("TileOffsets");
    let (geokeys, _, _, _) = *entries
        .iter()
        .find(|e| e.1 == 34735)
        .expect("GeoKeyDirectory");
    let geokeys_at = {
        let e = geokeys;
        u32::from_le_bytes([src[e + 8], src[e + 9], src[e + 10], src[e + 11]]) as usize
    };
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "huge-count.tif",
            Box::new(move |b| {
                b[tile_offsets + 4..tile_offsets + 8].copy_from_slice(&u32::MAX.to_le_bytes())
            }),
            "declares 4294967295 values",
        ),
        (
            "unknown-type.tif",
            Box::new(move |b| {
                b[tile_offsets + 2..tile_offsets + 4].copy_from_slice(&77u16.to_le_bytes())
            }),
            "type 77, which TIFF does not define",
        ),
        (
            "past-the-end.tif",
            Box::new(move |b| {
                let end = b.len() as u32;
                b[tile_offsets + 8..tile_offsets + 12].copy_from_slice(&end.to_le_bytes());
            }),
            "run past the end of the file",
        ),
        (
            "geokey-version.tif",
            Box::new(move |b| b[geokeys_at..geokeys_at + 2].copy_from_slice(&2u16.to_le_bytes())),
            "async-tiff) panicked",
        ),
    ];
    for (name, patch, want) in cases {
        let mut b = src.clone();
        patch(&mut b);
        let bad = dir.path().join(name);
        std::fs::write(&bad, b).unwrap();
        let msg = header_error(&bad).await;
        assert!(msg.contains(name) && msg.contains(want), "{name}: {msg}");
    }
}
