//! Loopback servers for tests and the demo: a world's COGs over HTTP with
//! `Range` support (206, `Content-Range`, 416), and a real STAC API (the
//! `stac-server` crate, memory backend) serving its items — one axum router
//! bound to `127.0.0.1` on an ephemeral port.
//!
//! Every request is counted ([`ServerStats`]), so tests and benchmarks can
//! assert exactly how many requests and bytes a read cost.

use crate::world::World;
use crate::{Error, Result};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use stac::api::TransactionClient;
use stac_server::{Api, MemoryBackend};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One served request, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Response status.
    pub status: u16,
    /// Response body bytes (from `Content-Length`).
    pub bytes: u64,
}

/// Request counters of a [`WorldServer`].
#[derive(Debug, Default)]
pub struct ServerStats {
    requests: AtomicU64,
    data_requests: AtomicU64,
    data_bytes: AtomicU64,
    log: Mutex<Vec<RequestLog>>,
}

/// Requests kept in the log (older ones are only counted).
const LOG_CAP: usize = 100_000;

impl ServerStats {
    /// All requests served.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Requests for files under `/data`.
    pub fn data_requests(&self) -> u64 {
        self.data_requests.load(Ordering::Relaxed)
    }
    /// Body bytes sent for files under `/data`.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes.load(Ordering::Relaxed)
    }
    /// A copy of the request log.
    pub fn log(&self) -> Vec<RequestLog> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
    /// Zeroes every counter and the log.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.data_requests.store(0, Ordering::Relaxed);
        self.data_bytes.store(0, Ordering::Relaxed);
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }
}

async fn count(State(stats): State<Arc<ServerStats>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let range = req
        .headers()
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if path.starts_with("/data/") {
        stats.data_requests.fetch_add(1, Ordering::Relaxed);
        stats.data_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    if let Ok(mut l) = stats.log.lock()
        && l.len() < LOG_CAP
    {
        l.push(RequestLog {
            method,
            path,
            range,
            status: resp.status().as_u16(),
            bytes,
        });
    }
    resp
}

/// How a [`WorldServer`] behaves. The defaults are a well-behaved server; the
/// other settings reproduce real servers' quirks so clients can be tested
/// against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Loopback address to bind. Default `127.0.0.1:0` (an ephemeral port).
    pub bind: String,
    /// Answer `POST /search` (default true); when false it gets 405, as on
    /// GET-only servers.
    pub post_search: bool,
    /// Strip `rel=next` links from `/search` pages (default false), as
    /// Planetary Computer has been reported to do (planetary-computer-apis#274).
    pub drop_next_links: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bind: "127.0.0.1:0".into(),
            post_search: true,
            drop_next_links: false,
        }
    }
}

async fn misbehave(State(opts): State<Arc<ServerOptions>>, req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let is_search = req.uri().path() == "/search";
    if is_search && !opts.post_search && req.method() == axum::http::Method::POST {
        return axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let resp = next.run(req).await;
    if !(is_search && opts.drop_next_links) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(links) = v.get_mut("links").and_then(|l| l.as_array_mut()) {
        links.retain(|l| l.get("rel").and_then(|r| r.as_str()) != Some("next"));
    }
    let out = serde_json::to_vec(&v).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// A running loopback server for one world.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::{server::WorldServer, world::{Recipe, World}};
/// let world = World::cached(&Recipe::oakland()).unwrap();
/// let server = WorldServer::start(&world).await.unwrap();
/// println!("STAC API at {}", server.stac_url());
/// server.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct WorldServer {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl WorldServer {
    /// Binds `127.0.0.1:0`, loads the world's collection and items (asset
    /// hrefs made absolute to this server) into a `stac-server` memory
    /// backend and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::NotAWorld`] for unreadable items, [`Error::Io`] when binding fails.
    pub async fn start(world: &World) -> Result<WorldServer> {
        Self::start_with(world, ServerOptions::default()).await
    }

    /// As [`WorldServer::start`], on a given loopback address such as `127.0.0.1:8090`.
    ///
    /// # Errors
    /// As [`WorldServer::start`]; [`Error::Invalid`] for a non-loopback address.
    pub async fn start_on(world: &World, bind: &str) -> Result<WorldServer> {
        Self::start_with(
            world,
            ServerOptions {
                bind: bind.to_string(),
                ..ServerOptions::default()
            },
        )
        .await
    }

    /// Starts a server with [`ServerOptions`] (misbehaviours for tests).
    ///
    /// # Errors
    /// As [`WorldServer::start`]; [`Error::Invalid`] for a non-loopback address.
    pub async fn start_with(world: &World, opts: ServerOptions) -> Result<WorldServer> {
        let bind = opts.bind.as_str();
        let want: SocketAddr = bind
            .parse()
            .map_err(|e| Error::invalid("bind address", format!("{bind}: {e}")))?;
        if !want.ip().is_loopback() {
            return Err(Error::invalid(
                "bind address",
                format!("{bind} is not loopback"),
            ));
        }
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|e| Error::io(bind, e))?;
        let addr = listener.local_addr().map_err(|e| Error::io(bind, e))?;
        let root = format!("http://{addr}");

        let mut backend = MemoryBackend::new();
        let stac_err = |m: String| Error::Stac {
            url: root.clone(),
            message: m,
        };
        backend
            .add_collection(world.collection()?)
            .await
            .map_err(|e| stac_err(e.to_string()))?;
        for mut item in world.items()? {
            for asset in item.assets.values_mut() {
                if let Some(rel) = asset.href.strip_prefix("../") {
                    asset.href = format!("{root}/{rel}");
                }
            }
            backend
                .add_item(item)
                .await
                .map_err(|e| stac_err(e.to_string()))?;
        }
        let api = Api::new(backend, &format!("{root}/"))
            .map_err(|e| stac_err(e.to_string()))?
            .id("tilestack-demo")
            .description("tilestack demo world");
        let stats = Arc::new(ServerStats::default());
        let app = stac_server::routes::from_api(api)
            .nest_service(
                "/data",
                tower_http::services::ServeDir::new(world.dir().join("data")),
            )
            .layer(middleware::from_fn_with_state(
                Arc::new(opts.clone()),
                misbehave,
            ))
            .layer(middleware::from_fn_with_state(stats.clone(), count));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(WorldServer {
            addr,
            stats,
            stop: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The STAC API landing page URL (`http://127.0.0.1:PORT/`).
    pub fn stac_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Request counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    /// Stops accepting, finishes in-flight requests and waits for the task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for WorldServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
