//! SAS signing against a loopback token endpoint that issues short-lived
//! tokens (and, when told to, answers 429 like Planetary Computer's rate
//! limiter), and a loopback "blob" server that rejects expired or revoked
//! ones (403). Blob hostnames resolve to 127.0.0.1 through reqwest's resolver
//! override: no traffic leaves the machine.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tilestack::HttpRangeClient;
use tilestack::fetch::{PcSignerConfig, PlanetaryComputerSigner, RetryConfig, Signer};
use tilestack::geo::PixelWindow;

/// What the loopback token endpoint and blob server do, and what they saw.
struct Counters {
    /// Token requests answered (429s included).
    tokens: AtomicU64,
    /// Tokens issued; a token's `sig` ends in its number.
    issued: AtomicU64,
    /// Blob reads let through.
    reads: AtomicU64,
    /// Blob reads refused with 403.
    rejected: AtomicU64,
    /// Lifetime of issued tokens, ms.
    ttl_ms: AtomicI64,
    /// 429s still to answer before tokens are issued.
    throttle: AtomicU64,
    /// The wait those 429s ask for, seconds.
    hint_secs: AtomicU64,
    /// Ask for it in `Retry-After` instead of the body.
    hint_header: AtomicBool,
    /// How long a token request takes, ms.
    delay_ms: AtomicU64,
    /// Tokens numbered below this are refused by the blob server (revoked).
    revoked_below: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            tokens: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ttl_ms: AtomicI64::new(1500),
            throttle: AtomicU64::new(0),
            hint_secs: AtomicU64::new(0),
            hint_header: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            revoked_below: AtomicU64::new(0),
        }
    }
}

async fn token(
    State(c): State<Arc<Counters>>,
    Path((acct, cont)): Path<(String, String)>,
) -> axum::response::Response {
    c.tokens.fetch_add(1, Ordering::SeqCst);
    let delay = c.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let throttled = c
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if throttled {
        // What Planetary Computer's API Management answers when rate-limited.
        let hint = c.hint_secs.load(Ordering::SeqCst);
        return if c.hint_header.load(Ordering::SeqCst) {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", hint.to_string())],
                "Too Many Requests",
            )
                .into_response()
        } else {
            (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({
                    "statusCode": 429,
                    "message": format!("Rate limit is exceeded. Try again in {hint} seconds."),
                })),
            )
                .into_response()
        };
    }
    let n = c.issued.fetch_add(1, Ordering::SeqCst);
    let ttl = c.ttl_ms.load(Ordering::SeqCst);
    let expiry = chrono::Utc::now() + chrono::Duration::milliseconds(ttl);
    let se = expiry.timestamp_millis();
    axum::Json(serde_json::json!({
        "msft:expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "token": format!("st=0&se={se}&sp=rl&sv=2021&sr=c&sig={acct}-{cont}-{n}"),
    }))
    .into_response()
}

/// Serves `app` on 127.0.0.1:0 and returns its address.
async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A token endpoint plus `blobs` behind the token check, served on loopback.
async fn serve_token_and_blobs(
    counters: &Arc<Counters>,
    blobs: axum::Router,
) -> std::net::SocketAddr {
    let blobs = blobs.layer(axum::middleware::from_fn_with_state(
        counters.clone(),
        check_token,
    ));
    let app = axum::Router::new()
        .route("/api/sas/v1/token/{acct}/{cont}", get(token))
        .with_state(counters.clone())
        .merge(blobs);
    serve(app).await
}

const BLOB_HOST: &str = "sentinel2l2a01.blob.core.windows.net";

/// An HTTP client that resolves the blob host to the loopback server, and a
/// signer fetching its tokens there.
fn blob_client_and_signer(
    addr: std::net::SocketAddr,
    margin: Duration,
) -> (reqwest::Client, PlanetaryComputerSigner) {
    blob_client_and_signer_with(
        addr,
        PcSignerConfig {
            refresh_margin: margin,
            ..PcSignerConfig::default()
        },
    )
}

/// As [`blob_client_and_signer`], with `cfg` (its `token_url` replaced).
fn blob_client_and_signer_with(
    addr: std::net::SocketAddr,
    cfg: PcSignerConfig,
) -> (reqwest::Client, PlanetaryComputerSigner) {
    let http = reqwest::Client::builder()
        .resolve(BLOB_HOST, addr)
        .build()
        .unwrap();
    let cfg = PcSignerConfig {
        token_url: format!("http://{addr}/api/sas/v1/token"),
        ..cfg
    };
    let signer = PlanetaryComputerSigner::with_client(cfg, http.clone());
    (http, signer)
}

/// The token endpoint plus a blob server answering any path with 16 bytes.
async fn serve_token_and_small_blobs(counters: &Arc<Counters>) -> std::net::SocketAddr {
    let blobs = axum::Router::new().route("/{*path}", get(|| async { vec![7u8; 16] }));
    serve_token_and_blobs(counters, blobs).await
}

/// An href in `container` on the loopback blob server.
fn blob_href(addr: std::net::SocketAddr, container: &str, name: &str) -> String {
    format!("http://{BLOB_HOST}:{}/{container}/{name}", addr.port())
}

#[tokio::test]
async fn long_run_refreshes_tokens_without_a_failed_read() {
    let counters = Arc::new(Counters::default());
    let blobs = axum::Router::new().route("/{*path}", get(|| async { StatusCode::OK }));
    let addr = serve_token_and_blobs(&counters, blobs).await;
    let (http, signer) = blob_client_and_signer(addr, Duration::from_millis(700));
    let host = BLOB_HOST;
    let href = format!("http://{host}:{}/sentinel2-l2/10/S/EG/B04.tif", addr.port());
    let start = std::time::Instant::now();
    let mut reads = 0;
    while start.elapsed() < Duration::from_millis(4000) {
        let url = signer.sign(&href).await.unwrap();
        assert!(url.starts_with(&href) && url.contains("sig=sentinel2l2a01-sentinel2-l2-"));
        let status = http.get(&url).send().await.unwrap().status();
        assert_eq!(status, reqwest::StatusCode::OK, "read {reads} with {url}");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tokens = counters.tokens.load(Ordering::SeqCst);
    assert!(reads > 50, "{reads} reads");
    // 4 s with 1.5 s tokens refreshed 0.7 s before expiry: ~5 tokens, not one per read.
    assert!(
        (3..=8).contains(&tokens),
        "{tokens} token requests for {reads} reads"
    );
    assert_eq!(counters.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(signer.token_requests(), tokens);
}

#[tokio::test]
async fn token_endpoint_errors_name_the_url() {
    let addr =
        serve(axum::Router::new().route("/{*p}", get(|| async { StatusCode::UNAUTHORIZED }))).await;
    let signer = PlanetaryComputerSigner::new(PcSignerConfig {
        token_url: format!("http://{addr}/token"),
        ..PcSignerConfig::default()
    });
    let e = signer
        .sign("https://acct.blob.core.windows.net/cont/x.tif")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("http://{addr}/token/acct/cont")) && e.contains("401"),
        "{e}"
    );
}

/// Rejects requests without a valid, unexpired token; serves the world's COGs otherwise.
async fn check_token(
    State(c): State<Arc<Counters>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let q: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis();
    // The token's number ends its `sig`; revoked ones are refused like expired ones.
    let number = q
        .get("sig")
        .and_then(|s| s.rsplit('-').next())
        .and_then(|n| n.parse::<u64>().ok());
    let revoked = number.is_some_and(|n| n < c.revoked_below.load(Ordering::SeqCst));
    match q.get("se").and_then(|s| s.parse::<i64>().ok()) {
        Some(se) if se > now && number.is_some() && !revoked => {
            c.reads.fetch_add(1, Ordering::SeqCst);
            next.run(req).await
        }
        _ => {
            c.rejected.fetch_add(1, Ordering::SeqCst);
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

#[tokio::test]
async fn cog_reads_are_signed_per_request_and_tokens_stay_out_of_errors() {
    use tilestack::CogReader;
    use tilestack::cog::TileCache;
    let world = crate::util::small_world();
    let counters = Arc::new(Counters::default());
    let blobs = axum::Router::new().nest_service(
        "/sentinel2-l2",
        tower_http::services::ServeDir::new(world.dir().join("data")),
    );
    let addr = serve_token_and_blobs(&counters, blobs).await;
    let (http, signer) = blob_client_and_signer(addr, Duration::from_millis(200));
    let signer = Arc::new(signer);
    let host = BLOB_HOST;
    let id = &world.manifest().scenes[0].id;
    let href = format!("http://{host}:{}/sentinel2-l2/{id}/B04.tif", addr.port());
    let signed = CogReader::new(
        HttpRangeClient::with_client(http.clone(), RetryConfig::default())
            .with_signer(signer.clone()),
        TileCache::new(1 << 30),
    );
    let px = signed
        .read_window(&href, 0, PixelWindow::new(100, 100, 300, 300))
        .await
        .unwrap();
    assert!(
        counters.reads.load(Ordering::SeqCst) >= 2,
        "header + tiles read with tokens"
    );
    assert_eq!(counters.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(signer.token_requests(), 1, "one token for the container");

    // Same pixels as an unsigned read of the same file.
    let server = tilestack::demo::WorldServer::start(world).await.unwrap();
    let plain = CogReader::new(
        HttpRangeClient::new(RetryConfig::default()).unwrap(),
        TileCache::new(1 << 30),
    );
    let want = plain
        .read_window(
            &format!("{}/data/{id}/B04.tif", server.url()),
            0,
            PixelWindow::new(100, 100, 300, 300),
        )
        .await
        .unwrap();
    assert!(
        px.iter()
            .zip(want.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    server.shutdown().await;

    // Unsigned reads are refused (403), and the error names the href without any token.
    let unsigned = CogReader::new(
        HttpRangeClient::with_client(http, RetryConfig::default()),
        TileCache::new(1 << 30),
    );
    let e = unsigned
        .read_window(&href, 0, PixelWindow::new(0, 0, 10, 10))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&href) && e.contains("403"), "{e}");
    assert!(!e.contains("sig="), "{e}");
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_is_an_error_not_a_hang() {
    let addr = serve(axum::Router::new().route(
        "/{*p}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }),
    ))
    .await;
    let signer = PlanetaryComputerSigner::new(PcSignerConfig {
        token_url: format!("http://{addr}/token"),
        timeout: Duration::from_millis(200),
        attempts: 2,
        ..PcSignerConfig::default()
    });
    let t = std::time::Instant::now();
    let e = signer
        .sign("https://acct.blob.core.windows.net/cont/x.tif")
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let msg = e.chain();
    assert!(msg.contains(&addr.to_string()), "{msg}");
}

#[tokio::test]
async fn sign_rate_limited_token_endpoint_is_waited_out_as_asked() {
    let counters = Arc::new(Counters::default());
    // Planetary Computer's 429: the hint is in the JSON body only.
    counters.throttle.store(2, Ordering::SeqCst);
    counters.hint_secs.store(1, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (http, signer) = blob_client_and_signer_with(addr, PcSignerConfig::default());
    let href = blob_href(addr, "sentinel2-l2", "B04.tif");
    let t = Instant::now();
    let url = signer.sign(&href).await.unwrap();
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_secs(2), "waited {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "waited {elapsed:?}");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 3);
    assert_eq!(signer.token_requests(), 3);
    let status = http.get(&url).send().await.unwrap().status();
    assert_eq!(status, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn sign_retry_after_header_is_honoured() {
    let counters = Arc::new(Counters::default());
    counters.throttle.store(1, Ordering::SeqCst);
    counters.hint_secs.store(1, Ordering::SeqCst);
    counters.hint_header.store(true, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (_, signer) = blob_client_and_signer_with(addr, PcSignerConfig::default());
    let t = Instant::now();
    signer
        .sign(&blob_href(addr, "sentinel2-l2", "B04.tif"))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn sign_rate_limit_hint_beyond_the_cap_fails_fast_for_every_waiter() {
    let counters = Arc::new(Counters::default());
    counters.throttle.store(u64::MAX, Ordering::SeqCst);
    counters.hint_secs.store(30, Ordering::SeqCst);
    counters.delay_ms.store(100, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (_, signer) = blob_client_and_signer_with(
        addr,
        PcSignerConfig {
            max_retry_wait: Duration::from_secs(5),
            ..PcSignerConfig::default()
        },
    );
    let href = blob_href(addr, "sentinel2-l2", "B04.tif");
    let t = Instant::now();
    // Ten readers at once: one token request, its error shared by all.
    let results = futures::future::join_all((0..10).map(|_| signer.sign(&href))).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 1);
    let url = format!("http://{addr}/api/sas/v1/token/sentinel2l2a01/sentinel2-l2");
    for r in results {
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                tilestack::Error::Http {
                    status: Some(429),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.contains(&url), "{e}");
        assert!(e.contains("429") && e.contains("30s"), "{e}");
        assert!(e.contains("Try again in 30 seconds"), "{e}");
        assert!(e.contains("max_retry_wait"), "{e}");
    }
}

#[tokio::test]
async fn sign_rate_limit_retries_running_out_name_url_status_and_hint() {
    let counters = Arc::new(Counters::default());
    counters.throttle.store(u64::MAX, Ordering::SeqCst);
    counters.hint_secs.store(0, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (_, signer) = blob_client_and_signer_with(
        addr,
        PcSignerConfig {
            attempts: 3,
            ..PcSignerConfig::default()
        },
    );
    let e = signer
        .sign(&blob_href(addr, "sentinel2-l2", "B04.tif"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 3);
    assert!(
        e.contains(&format!(
            "http://{addr}/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"
        )),
        "{e}"
    );
    assert!(
        e.contains("no token after 3 attempts") && e.contains("429"),
        "{e}"
    );
    assert!(e.contains("Try again in 0 seconds"), "{e}");
}

#[tokio::test]
async fn sign_short_lived_tokens_are_refreshed_before_they_expire() {
    let counters = Arc::new(Counters::default());
    counters.ttl_ms.store(2500, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    // Refreshed min(1 s, 0.5 × 2.5 s) = 1 s before expiry: every 1.5 s.
    let (http, signer) = blob_client_and_signer_with(
        addr,
        PcSignerConfig {
            refresh_margin: Duration::from_secs(1),
            refresh_fraction: 0.5,
            ..PcSignerConfig::default()
        },
    );
    let signer = Arc::new(signer);
    let client =
        HttpRangeClient::with_client(http, RetryConfig::default()).with_signer(signer.clone());
    let href = blob_href(addr, "sentinel2-l2", "B04.tif");
    let start = Instant::now();
    let mut reads = 0;
    while start.elapsed() < Duration::from_millis(6000) {
        let b = client.get_range(&href, 0..16).await.unwrap();
        assert_eq!(b.len(), 16, "read {reads}");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reads > 40, "{reads} reads");
    // Reads over 6 s with 2.5 s tokens, none refused: each token was
    // replaced before it expired (the blob server 403s expired ones).
    assert_eq!(counters.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(client.metrics().retries(), 0);
    let tokens = counters.tokens.load(Ordering::SeqCst);
    assert!(
        (4..=5).contains(&tokens),
        "{tokens} token requests for {reads} reads"
    );
    assert_eq!(signer.token_requests(), tokens);
}

#[tokio::test]
async fn sign_concurrent_reads_with_a_cold_signer_make_one_token_request() {
    let counters = Arc::new(Counters::default());
    counters.ttl_ms.store(60_000, Ordering::SeqCst);
    // A slow token endpoint: every read arrives while the first request is in flight.
    counters.delay_ms.store(300, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (http, signer) = blob_client_and_signer_with(addr, PcSignerConfig::default());
    let signer = Arc::new(signer);
    let client =
        HttpRangeClient::with_client(http, RetryConfig::default()).with_signer(signer.clone());
    let hrefs: Vec<String> = (0..64)
        .map(|i| {
            let container = if i % 2 == 0 {
                "sentinel2-l2"
            } else {
                "landsat-c2"
            };
            blob_href(addr, container, &format!("tile{i}.tif"))
        })
        .collect();
    let t = Instant::now();
    let reads = futures::future::join_all(hrefs.iter().map(|h| client.get_range(h, 0..16))).await;
    for r in reads {
        assert_eq!(r.unwrap().len(), 16);
    }
    // One token per container, the two fetched side by side.
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 2);
    assert_eq!(signer.token_requests(), 2);
    assert_eq!(counters.reads.load(Ordering::SeqCst), 64);
    assert!(
        t.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn sign_a_refused_token_is_refetched_once() {
    let counters = Arc::new(Counters::default());
    counters.ttl_ms.store(60_000, Ordering::SeqCst);
    let addr = serve_token_and_small_blobs(&counters).await;
    let (http, signer) = blob_client_and_signer_with(addr, PcSignerConfig::default());
    let signer = Arc::new(signer);
    let client =
        HttpRangeClient::with_client(http, RetryConfig::default()).with_signer(signer.clone());
    let href = blob_href(addr, "sentinel2-l2", "B04.tif");
    client.get_range(&href, 0..16).await.unwrap();
    assert_eq!(signer.token_requests(), 1);

    // The cached token still looks fresh but the server now refuses it (as
    // it refuses an expired SAS): the read drops it, fetches one, succeeds.
    counters.revoked_below.store(1, Ordering::SeqCst);
    assert_eq!(client.get_range(&href, 0..16).await.unwrap().len(), 16);
    assert_eq!(signer.token_requests(), 2);
    assert_eq!(counters.rejected.load(Ordering::SeqCst), 1);
    assert_eq!(client.metrics().retries(), 1);
    client.get_range(&href, 0..16).await.unwrap();
    assert_eq!(signer.token_requests(), 2, "the new token is cached");

    // Refused again with the fresh token: an error after one re-fetch, no loop.
    counters.revoked_below.store(u64::MAX, Ordering::SeqCst);
    let e = client.get_range(&href, 0..16).await.unwrap_err();
    assert!(
        matches!(
            e,
            tilestack::Error::Http {
                status: Some(403),
                ..
            }
        ),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.contains(&href) && e.contains("403") && e.contains("fresh token"),
        "{e}"
    );
    assert!(!e.contains("sig="), "{e}");
    assert_eq!(signer.token_requests(), 3);
    assert_eq!(counters.rejected.load(Ordering::SeqCst), 3);
}
