//! Secrets never leave memory: a subscription key and SAS tokens are
//! planted, the `tilestack` binary runs every command that reads signed
//! assets (a stack, its dry run, a failing stack, `materialize`) at
//! `RUST_LOG=trace`, and every byte it printed or wrote is searched for them.
//! The blob server refuses any read without the token, so the reads that
//! succeed prove the token was used.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::util::small_world;

const KEY: &str = "PLANTEDKEY7f3a9c";
const SIG: &str = "PLANTEDSIG51d0e2";

#[derive(Default)]
struct Seen {
    tokens: AtomicU64,
    signed_reads: AtomicU64,
    refused: AtomicU64,
}

async fn token(
    State(seen): State<Arc<Seen>>,
    Path((_acct, _cont)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if headers
        .get("ocp-apim-subscription-key")
        .and_then(|v| v.to_str().ok())
        != Some(KEY)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    seen.tokens.fetch_add(1, Ordering::SeqCst);
    let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
    axum::Json(serde_json::json!({
        "msft:expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "token": format!("st=0&se={}&sp=rl&sv=2021&sr=c&sig={SIG}", expiry.timestamp()),
    }))
    .into_response()
}

async fn check_sig(State(seen): State<Arc<Seen>>, req: Request, next: Next) -> Response {
    let signed = req
        .uri()
        .query()
        .is_some_and(|q| q.contains(&format!("sig={SIG}")));
    if !signed {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::FORBIDDEN.into_response();
    }
    seen.signed_reads.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn leaks(bytes: &[u8]) -> bool {
    [KEY, SIG]
        .iter()
        .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_key_and_token_appear_in_no_log_error_stack_shard_or_index() {
    let seen = Arc::new(Seen::default());
    let world = small_world();
    // token endpoint and blob server on `localhost` (signable through
    // TILESTACK_SIGN_HOST_SUFFIX; account "localhost", container "data")
    let app = axum::Router::new()
        .route("/token/{acct}/{cont}", axum::routing::get(token))
        .with_state(seen.clone())
        .nest_service(
            "/data",
            axum::Router::new()
                .fallback_service(tower_http::services::ServeDir::new(
                    world.dir().join("data"),
                ))
                .layer(axum::middleware::from_fn_with_state(
                    seen.clone(),
                    check_sig,
                )),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // the world's items with their hrefs on the blob server; one scene's B08 missing
    let mut items = world.items().unwrap();
    for it in &mut items {
        for a in it.assets.values_mut() {
            if let Some(rel) = a.href.strip_prefix("../") {
                a.href = format!("http://localhost:{port}/{rel}");
            }
        }
    }
    let snap = root.join("snap.json");
    tilestack::stac::save_snapshot(&items, &snap).unwrap();
    let mut broken = items.clone();
    for it in &mut broken {
        if let Some(a) = it.assets.get_mut("B08") {
            a.href = format!("{}.missing", a.href);
        }
    }
    let broken_snap = root.join("broken.json");
    tilestack::stac::save_snapshot(&broken, &broken_snap).unwrap();
    std::fs::write(
        root.join("points.csv"),
        "lon,lat,id\n-122.36,37.805,a\n-122.35,37.81,b\n",
    )
    .unwrap();
    let config = root.join("data.toml");
    std::fs::write(
        &config,
        format!(
            "seed = 1\n[catalog]\nsnapshot = {snap:?}\nsign = \"planetary-computer\"\n\
             [stack]\nbands = [\"B04\", \"B08\"]\ntile_size = 32\n\
             [time]\nrange = \"2019-08-01/2019-08-04\"\n\
             [sampler]\nkind = \"points\"\nfile = \"points.csv\"\n"
        ),
    )
    .unwrap();

    let run = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tilestack"));
        cmd.args(&args)
            .current_dir(root)
            .env("RUST_LOG", "trace")
            .env("PC_SDK_SAS_URL", format!("http://127.0.0.1:{port}/token"))
            .env("PC_SDK_SUBSCRIPTION_KEY", KEY)
            .env("TILESTACK_SIGN_HOST_SUFFIX", "localhost");
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let stack = |snap: &std::path::Path, out: &str, extra: &[&str]| {
        let mut a: Vec<String> = [
            "stack",
            "--snapshot",
            snap.to_str().unwrap(),
            "--centroid",
            "-122.33,37.81",
            "--bands",
            "B04,B08,SCL",
            "--cloud-band",
            "SCL",
            "--time",
            "2019-08-01/2019-08-05",
            "--tile-size",
            "64",
            "--sign",
            "planetary-computer",
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut outputs = Vec::new();
    let ok = run(stack(&snap, "stack-out", &[])).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    outputs.push(("stack", ok));
    let dry = run(stack(&snap, "dry-out", &["--dry-run"])).await;
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    outputs.push(("stack --dry-run", dry));
    let bad = run(stack(&broken_snap, "bad-out", &[])).await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("B08.tif.missing"), "names the URL: {err}");
    outputs.push(("a failing stack", bad));
    let mat = run(vec![
        "materialize".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
        "--out".into(),
        root.join("shards").to_str().unwrap().into(),
    ])
    .await;
    assert!(
        mat.status.success(),
        "{}",
        String::from_utf8_lossy(&mat.stderr)
    );
    outputs.push(("materialize", mat));

    eprintln!(
        "{} tokens, {} signed reads",
        seen.tokens.load(Ordering::SeqCst),
        seen.signed_reads.load(Ordering::SeqCst)
    );
    // the reads were signed with the planted token, got with the planted key
    assert!(seen.tokens.load(Ordering::SeqCst) >= 2, "one per process");
    assert!(seen.signed_reads.load(Ordering::SeqCst) > 10);
    assert_eq!(seen.refused.load(Ordering::SeqCst), 0);
    // the logs are real: trace-level lines were printed
    let log = String::from_utf8_lossy(&outputs[0].1.stderr).to_string();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");

    for (what, out) in &outputs {
        assert!(!leaks(&out.stdout), "{what}: stdout holds a secret");
        assert!(!leaks(&out.stderr), "{what}: stderr holds a secret");
    }
    let written = files(root);
    assert!(
        written
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "safetensors")),
        "{written:?}"
    );
    assert!(written.len() >= 8, "{written:?}");
    for p in &written {
        assert!(
            !leaks(&std::fs::read(p).unwrap()),
            "{} holds a secret",
            p.display()
        );
    }
}

/// Item ids and asset keys are data, never paths: ids with `../`, an
/// absolute path, a NUL and a slash, and an asset key with `../`, go
/// through `stack` and `materialize`, and every file written is inside the
/// output folders, under tilestack's own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_item_ids_and_asset_keys_write_nothing_outside_the_output() {
    let world = small_world();
    let server = tilestack::demo::WorldServer::start(world).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("work");
    std::fs::create_dir(&root).unwrap();
    let hostile = [
        "../../escape",
        "/tmp/escape-abs",
        "nul\0escape",
        "a/b/escape",
    ];
    let mut items = world.items().unwrap();
    for (i, it) in items.iter_mut().enumerate() {
        it.id = format!("{}{}", hostile[i % hostile.len()], i);
        let mut extra = None;
        for a in it.assets.values_mut() {
            if let Some(rel) = a.href.strip_prefix("../") {
                a.href = format!("{}/{rel}", server.url());
            }
            extra.get_or_insert_with(|| a.clone());
        }
        if let Some(a) = extra {
            it.assets.insert("../../escape-key".into(), a);
        }
    }
    let snap = root.join("snap.json");
    tilestack::stac::save_snapshot(&items, &snap).unwrap();
    std::fs::write(
        root.join("points.csv"),
        "lon,lat,id\n-122.36,37.805,../../escape-point\n",
    )
    .unwrap();
    std::fs::write(
        root.join("data.toml"),
        format!(
            "seed = 1\n[catalog]\nsnapshot = {snap:?}\n[stack]\nbands = [\"B04\"]\ntile_size = 32\n\
             [time]\nrange = \"2019-08-01/2019-08-04\"\n\
             [sampler]\nkind = \"points\"\nfile = \"points.csv\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tilestack"));
        cmd.args(args).current_dir(&root);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let before = files(dir.path()).len();
    for args in [
        &[
            "stack",
            "--snapshot",
            "snap.json",
            "--centroid",
            "-122.33,37.81",
            "--bands",
            "B04",
            "--time",
            "2019-08-01/2019-08-05",
            "--tile-size",
            "32",
            "--out",
            "stack-out",
        ][..],
        &["materialize", "--config", "data.toml", "--out", "shards"],
    ] {
        let out = run(args).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = files(dir.path());
    assert!(all.len() > before + 3, "{all:?}");
    for p in &all {
        let rel = p
            .strip_prefix(&root)
            .unwrap_or_else(|_| panic!("outside: {}", p.display()));
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        assert!(
            [
                "snap.json",
                "points.csv",
                "data.toml",
                "stack-out",
                "shards"
            ]
            .contains(&&*first),
            "{}",
            p.display()
        );
        assert!(!rel.to_string_lossy().contains("escape"), "{}", p.display());
    }
    for i in 0..items.len() {
        let abs = format!("/tmp/escape-abs{i}");
        assert!(!std::path::Path::new(&abs).exists(), "{abs}");
    }
}
