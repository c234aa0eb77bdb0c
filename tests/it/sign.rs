//! SAS signing against a loopback token endpoint that issues short-lived
//! tokens, and a loopback "blob" server that rejects expired ones (403).
//! Blob hostnames resolve to 127.0.0.1 through reqwest's resolver override:
//! no traffic leaves the machine.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tilestack::sign::{PcSignerConfig, PlanetaryComputerSigner, Signer};

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

async fn blob(
    State(c): State<Arc<Counters>>,
    Query(q): Query<HashMap<String, String>>,
) -> StatusCode {
    let now = chrono::Utc::now().timestamp_millis();
    match q.get("se").and_then(|s| s.parse::<i64>().ok()) {
        Some(se) if se > now && q.contains_key("sig") => {
            c.reads.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
        _ => {
            c.rejected.fetch_add(1, Ordering::SeqCst);
            StatusCode::FORBIDDEN
        }
    }
}

#[tokio::test]
async fn long_run_refreshes_tokens_without_a_failed_read() {
    let counters = Arc::new(Counters::default());
    let app = axum::Router::new()
        .route("/api/sas/v1/token/{acct}/{cont}", get(token))
        .route("/{*path}", get(blob))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let host = "sentinel2l2a01.blob.core.windows.net";
    let http = reqwest::Client::builder()
        .resolve(host, addr)
        .build()
        .unwrap();
    let signer = PlanetaryComputerSigner::with_client(
        PcSignerConfig {
            token_url: format!("http://{addr}/api/sas/v1/token"),
            refresh_margin: Duration::from_millis(700),
            ..PcSignerConfig::default()
        },
        http.clone(),
    );
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
    let app = axum::Router::new().route("/{*p}", get(|| async { StatusCode::UNAUTHORIZED }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
