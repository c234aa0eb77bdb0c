//! COG reads against a server that fails on purpose (`ServerOptions` fault
//! injection): retried faults give the same pixels as a healthy server and
//! show up in the metrics; too many faults give an error naming the URL and
//! byte range — never a panic, never zeros — and a silent server times out.

use std::ops::Range;
use std::time::{Duration, Instant};

use ndarray::Array2;
use tilestack::cog::TileCache;
use tilestack::demo::{ServerOptions, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::{CogReader, HttpRangeClient};

use crate::util::small_world;

/// The window read throughout: 256×256 px over four 256 px tiles of scene 0's B04.
const WINDOW: (usize, usize, usize, usize) = (200, 150, 256, 256);
/// Tiles `(x, y)` that [`WINDOW`] intersects.
const WINDOW_TILES: [(usize, usize); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];
/// No read here may take longer than this, faults and all.
const READ_LIMIT: Duration = Duration::from_secs(20);

fn rel() -> String {
    let id = &small_world().manifest().scenes[0].id;
    format!("data/{id}/B04.tif")
}

fn url(server: &WorldServer) -> String {
    format!("{}/{}", server.url(), rel())
}

/// Short backoffs so the retries cost milliseconds.
fn retry(max_retries: u32) -> RetryConfig {
    RetryConfig {
        max_retries,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
        // Above any healthy loopback answer, below the injected stall.
        request_timeout: STALL_TIMEOUT,
    }
}

/// The client's request timeout here, and how long a stalled answer waits.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
const STALL_MS: u64 = 2_600;

fn reader(max_retries: u32) -> CogReader {
    CogReader::new(
        // A 1 MiB coalescing gap makes the window's four tiles one request,
        // so each injected fault maps to exactly one retry below.
        HttpRangeClient::new(retry(max_retries))
            .unwrap()
            .with_coalesce_gap(1 << 20),
        TileCache::new(1 << 30),
    )
}

async fn read(r: &CogReader, url: &str) -> tilestack::Result<Array2<f32>> {
    let (c, row, w, h) = WINDOW;
    tokio::time::timeout(
        READ_LIMIT,
        r.read_window(url, 0, PixelWindow::new(c, row, w, h)),
    )
    .await
    .expect("a faulty server must not hang the read")
}

/// What the fault-free server yields for [`WINDOW`], how many data requests
/// a fresh reader's header parse costs, and the coalesced byte range of the
/// window's tiles.
struct Reference {
    pixels: Array2<f32>,
    header_requests: u32,
    tiles: Range<u64>,
}

async fn reference() -> Reference {
    let server = WorldServer::start(small_world()).await.unwrap();
    let url = url(&server);
    let r = reader(0);
    let h = r.header(&url).await.unwrap();
    let header_requests = u32::try_from(server.stats().data_requests()).unwrap();
    let pixels = read(&r, &url).await.unwrap();
    let ranges: Vec<_> = WINDOW_TILES
        .iter()
        .map(|&(x, y)| h.ifds[0].tile_range(x, y).unwrap())
        .collect();
    let tiles =
        ranges.iter().map(|r| r.start).min().unwrap()..ranges.iter().map(|r| r.end).max().unwrap();
    // The window's pixels are real data (the sequence is not vacuous).
    assert!(pixels.iter().any(|v| v.is_finite() && *v > 0.0));
    server.shutdown().await;
    Reference {
        pixels,
        header_requests,
        tiles,
    }
}

fn same(a: &Array2<f32>, b: &Array2<f32>) -> bool {
    a.dim() == b.dim()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// The fault kinds, each as options injecting `n` of it after `after` data
/// requests. Connection resets are tested apart (see
/// [`connections_dropped_mid_body_are_retried`]).
fn kinds(n: u32, after: u32) -> Vec<(&'static str, ServerOptions)> {
    let base = ServerOptions {
        fault_after: after,
        ..ServerOptions::default()
    };
    vec![
        (
            "503",
            ServerOptions {
                fail_first: n,
                ..base.clone()
            },
        ),
        (
            "429 + Retry-After: 0",
            ServerOptions {
                status_429_first: n,
                fault_retry_after: Some(0),
                ..base.clone()
            },
        ),
        (
            "short 206",
            ServerOptions {
                truncate_first: n,
                ..base.clone()
            },
        ),
        (
            "206 for another range",
            ServerOptions {
                wrong_range_first: n,
                ..base.clone()
            },
        ),
        (
            "stall past the timeout",
            ServerOptions {
                stall_first: n,
                stall_ms: STALL_MS,
                ..base
            },
        ),
    ]
}

fn resets(n: u32, after: u32) -> ServerOptions {
    ServerOptions {
        fault_after: after,
        reset_first: n,
        ..ServerOptions::default()
    }
}

/// Three faults, four retries allowed: the read succeeds with the healthy
/// server's pixels, and each fault shows as one retry and one faulted request.
async fn assert_retried(kind: &str, opts: ServerOptions, want: &Reference) {
    let after = opts.fault_after as usize;
    let server = WorldServer::start_with(small_world(), opts).await.unwrap();
    let r = reader(4);
    let got = read(&r, &url(&server))
        .await
        .unwrap_or_else(|e| panic!("{kind} after {after}: {e:#}"));
    assert!(
        same(&got, &want.pixels),
        "{kind} after {after}: pixels differ"
    );
    assert_eq!(server.stats().faults_injected(), 3, "{kind} after {after}");
    // Requests here are sequential (header readahead, then one coalesced
    // tile request), so each fault costs exactly one retry.
    assert_eq!(r.client().metrics().retries(), 3, "{kind} after {after}");
    let data: Vec<u16> = server
        .stats()
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/data/"))
        .map(|l| l.status)
        .collect();
    let status = match kind {
        "503" => 503,
        "429 + Retry-After: 0" => 429,
        _ => 206,
    };
    // A stalled answer comes after the client gave up on it: the log holds
    // it late, if at all.
    if kind != "stall past the timeout" {
        assert_eq!(data[after..after + 3], [status; 3], "{kind}: {data:?}");
    }
    server.shutdown().await;
}

/// Three faults, one retry allowed: the read fails with an error naming the
/// URL and `range`; the same reader's next read meets the last fault, retries
/// once and gets the real pixels (nothing was cached as zeros).
async fn assert_too_few_retries(kind: &str, opts: ServerOptions, range: &str, want: &Reference) {
    let after = opts.fault_after;
    let server = WorldServer::start_with(small_world(), opts).await.unwrap();
    let url = url(&server);
    let r = reader(1);
    let err = read(&r, &url).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&url), "{kind} after {after}: {msg}");
    assert!(msg.contains(range), "{kind} after {after}: {msg}");
    assert!(
        msg.contains("after 1 retries"),
        "{kind} after {after}: {msg}"
    );
    assert_eq!(r.client().metrics().retries(), 1, "{kind} after {after}");
    assert!(r.cache().is_empty(), "a failed fetch must not be cached");
    let got = read(&r, &url)
        .await
        .unwrap_or_else(|e| panic!("{kind} after {after}, second read: {e:#}"));
    assert!(
        same(&got, &want.pixels),
        "{kind} after {after}: pixels differ"
    );
    assert_eq!(server.stats().faults_injected(), 3, "{kind} after {after}");
    server.shutdown().await;
}

#[tokio::test]
async fn retried_faults_yield_identical_pixels_and_count_retries() {
    let want = reference().await;
    // Faults on the first header read, then faults on the tile fetch.
    for after in [0, want.header_requests] {
        for (kind, opts) in kinds(3, after) {
            assert_retried(kind, opts, &want).await;
        }
    }
}

#[tokio::test]
async fn too_few_retries_fail_naming_url_and_range_then_recover() {
    let want = reference().await;
    let tiles = format!("bytes {}..{}", want.tiles.start, want.tiles.end);
    for (after, range) in [(0, "bytes 0.."), (want.header_requests, tiles.as_str())] {
        for (kind, opts) in kinds(3, after) {
            assert_too_few_retries(kind, opts, range, &want).await;
        }
    }
}

/// The same checks for connections dropped after the headers and half the body.
#[tokio::test]
async fn connections_dropped_mid_body_are_retried() {
    let want = reference().await;
    let tiles = format!("bytes {}..{}", want.tiles.start, want.tiles.end);
    for (after, range) in [(0, "bytes 0.."), (want.header_requests, tiles.as_str())] {
        assert_retried("reset mid-body", resets(3, after), &want).await;
        assert_too_few_retries("reset mid-body", resets(3, after), range, &want).await;
    }
}

#[tokio::test]
async fn no_retries_means_the_first_fault_is_the_error() {
    let server = WorldServer::start_with(
        small_world(),
        ServerOptions {
            fail_first: 1,
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let url = url(&server);
    let r = reader(0);
    let msg = format!("{:#}", read(&r, &url).await.unwrap_err());
    assert!(
        msg.contains(&url) && msg.contains("bytes 0..") && msg.contains("503"),
        "{msg}"
    );
    assert_eq!(r.client().metrics().retries(), 0);
    assert_eq!(r.client().metrics().requests(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_naming_the_url() {
    // Accepts connections and holds them open without ever answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let url = format!("http://{addr}/data/silent/B04.tif");
    let timeout = Duration::from_millis(300);
    let r = CogReader::new(
        HttpRangeClient::new(RetryConfig {
            request_timeout: timeout,
            ..retry(1)
        })
        .unwrap(),
        TileCache::new(1 << 20),
    );
    let t0 = Instant::now();
    let err = read(&r, &url).await.unwrap_err();
    let took = t0.elapsed();
    let msg = format!("{err:#}");
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("bytes 0.."), "{msg}");
    // Two attempts of one timeout each, plus a backoff of at most 10 ms.
    assert!(took >= 2 * timeout, "gave up after {took:?}: {msg}");
    assert!(took < 2 * timeout + Duration::from_secs(3), "took {took:?}");
    assert_eq!(r.client().metrics().retries(), 1);
    silent.abort();
}

/// A slow range server that records how many requests it serves at once.
#[tokio::test]
async fn requests_per_host_stay_under_the_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode, header};
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        max: AtomicUsize,
        served: AtomicUsize,
    }
    async fn slow(
        axum::extract::State(load): axum::extract::State<Arc<Load>>,
        headers: HeaderMap,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let n = load.now.fetch_add(1, Ordering::SeqCst) + 1;
        load.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        load.now.fetch_sub(1, Ordering::SeqCst);
        load.served.fetch_add(1, Ordering::SeqCst);
        let r = headers[header::RANGE]
            .to_str()
            .unwrap()
            .trim_start_matches("bytes=")
            .to_string();
        let (a, b) = r.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            format!("bytes {a}-{b}/1000000").parse().unwrap(),
        );
        (
            StatusCode::PARTIAL_CONTENT,
            h,
            vec![7u8; (b - a + 1) as usize],
        )
    }
    let load = Arc::new(Load::default());
    let app = axum::Router::new()
        .route("/{*p}", axum::routing::get(slow))
        .with_state(load.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = HttpRangeClient::new(retry(0))
        .unwrap()
        .with_per_host_limit(3);
    let url = format!("http://{addr}/f.tif");
    // 4 callers × 6 ranges far apart (no coalescing), each caller 8 at once
    let calls = (0..4u64).map(|k| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let ranges = (0..6u64)
                .map(|i| (k * 100_000 + i * 10_000)..(k * 100_000 + i * 10_000 + 100))
                .collect();
            client.get_ranges(&url, ranges).await.unwrap()
        }
    });
    let got = futures::future::join_all(calls).await;
    assert!(
        got.iter()
            .flatten()
            .all(|b| b.len() == 100 && b.iter().all(|&x| x == 7))
    );
    assert_eq!(load.served.load(Ordering::SeqCst), 24);
    let max = load.max.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&max),
        "{max} requests in flight at once, limit 3"
    );
}
