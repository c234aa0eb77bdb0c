//! SAS signing against a loopback token endpoint that issues short-lived
//! tokens, and a loopback "blob" server that rejects expired ones (403).
//! Blob hostnames resolve to 127.0.0.1 through reqwest's resolver override:
//! no traffic leaves the machine.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tilestack::PixelWindow;
use tilestack::{PcSignerConfig, PlanetaryComputerSigner, Signer};

#[derive(Default)]
struct Counters {
    tokens: AtomicU64,
    reads: AtomicU64,
    rejected: AtomicU64,
}

const TTL_MS: i64 = 1500;

async fn token(
    State(c): State<Arc<Counters>>,
    Path((acct, cont)): Path<(String, String)>,
) -> axum::Json<serde_json::Value> {
    let n = c.tokens.fetch_add(1, Ordering::SeqCst);
    let expiry = chrono::Utc::now() + chrono::Duration::milliseconds(TTL_MS);
    let se = expiry.timestamp_millis();
    axum::Json(serde_json::json!({
        "msft:expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "token": format!("st=0&se={se}&sp=rl&sv=2021&sr=c&sig={acct}-{cont}-{n}"),
    }))
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
    let http = reqwest::Client::builder()
        .resolve(BLOB_HOST, addr)
        .build()
        .unwrap();
    let signer = PlanetaryComputerSigner::with_client(
        PcSignerConfig {
            token_url: format!("http://{addr}/api/sas/v1/token"),
            refresh_margin: margin,
            ..PcSignerConfig::default()
        },
        http.clone(),
    );
    (http, signer)
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
    use axum::response::IntoResponse;
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
    match q.get("se").and_then(|s| s.parse::<i64>().ok()) {
        Some(se) if se > now && q.contains_key("sig") => {
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
    use tilestack::{CogReader, TileCache};
    use tilestack::{HttpRangeClient, RetryConfig};
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
