//! Loopback servers for tests and the demo: a world's COGs over HTTP with
//! `Range` support (206, `Content-Range`, 416), and a real STAC API (the
//! `stac-server` crate, memory backend) serving its items — one axum router
//! bound to `127.0.0.1` on an ephemeral port.
//!
//! Every request is counted ([`ServerStats`]), so tests and benchmarks can
//! assert exactly how many requests and bytes a read cost.
//!
//! [`ServerOptions`] can also make the server misbehave on purpose: GET-only
//! search, missing `next` links, and injected faults on `/data` requests
//! (503, 429, connections dropped mid-body, short bodies) so that retry paths
//! are tested against a real socket rather than a mock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::serve::ListenerExt;
use stac::api::TransactionClient;
use stac_server::{Api, MemoryBackend};

use crate::demo::world::World;
use crate::error::{Error, Result};

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
    faults: AtomicU64,
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
    /// `/data` requests answered with an injected fault (see [`ServerOptions`]).
    pub fn faults_injected(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
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
        self.faults.store(0, Ordering::Relaxed);
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
///
/// # Injected faults
///
/// The `*_first` counts apply to requests under `/data/` only (the STAC API is
/// never faulted), in arrival order, after the first [`fault_after`] of them
/// have been served normally. The kinds come one after another in field
/// order: with `fail_first: 2, reset_first: 1` the first two data requests
/// get 503, the third is dropped mid-body, and every later one is served
/// normally. The position in that sequence is one atomic counter per server,
/// shared by all connections; [`ServerStats::faults_injected`] counts the
/// faults actually sent.
///
/// [`fault_after`]: ServerOptions::fault_after
///
/// # Examples
/// ```
/// use tilestack::demo::ServerOptions;
/// // Three 503s, then one connection reset, then a healthy server.
/// let opts = ServerOptions { fail_first: 3, reset_first: 1, ..ServerOptions::default() };
/// assert_eq!(opts.truncate_first, 0);
/// ```
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
    /// Data requests served normally before any fault is injected, so faults
    /// can be aimed past a COG's header reads at its tiles. Default 0.
    pub fault_after: u32,
    /// Data requests answered `503 Service Unavailable` (empty body). Default 0.
    pub fail_first: u32,
    /// Data requests, after the 503s, answered `429 Too Many Requests`. Default 0.
    pub status_429_first: u32,
    /// Seconds sent as `Retry-After` with injected 503 and 429 answers;
    /// `None` (the default) sends no `Retry-After`, leaving the wait to the
    /// client's backoff.
    pub fault_retry_after: Option<u64>,
    /// Data requests, after the 429s, whose connection is dropped mid-body:
    /// the status and headers (including the full `Content-Length`) go out,
    /// then half the body, then the stream aborts. Applies to 200 and 206
    /// answers; others pass through (still using up one of the N). Default 0.
    pub reset_first: u32,
    /// Data requests, after the resets, answered with a well-formed but short
    /// 206: `Content-Range` names the range asked for, while the body and its
    /// `Content-Length` hold only the first half of it. Applies to 206
    /// answers; others pass through (still using up one of the N). Default 0.
    pub truncate_first: u32,
    /// Data requests, after the truncations, answered with another range
    /// than the one asked for: the `Range` header is moved 16 bytes on
    /// before the file server sees it, so the 206 honestly names (in
    /// `Content-Range`) and holds bytes the client did not ask for, of the
    /// right length. A client that checks only the length takes them.
    /// Default 0.
    pub wrong_range_first: u32,
    /// Data requests, after the wrong ranges, that wait [`stall_ms`] before
    /// they are answered normally: a stall longer than the client's request
    /// timeout. Default 0.
    ///
    /// [`stall_ms`]: ServerOptions::stall_ms
    pub stall_first: u32,
    /// How long a stalled request waits, milliseconds (default 0).
    pub stall_ms: u64,
    /// After every `*_first` fault, every `fault_every`-th data request is
    /// faulted, in turn a 503, a connection reset mid-body, a short 206 and
    /// a 206 for another range: `10` faults 10 % of the data requests for as
    /// long as the server runs. Default 0: off.
    pub fault_every: u32,
    /// Milliseconds every request waits before it is answered (default 0):
    /// a distant server's round trip, on loopback.
    pub latency_ms: u64,
    /// Paths (e.g. `/data/SCENE/B08.tif`) answered `503 Service
    /// Unavailable` on every request: an asset that is down for good, where
    /// retries cannot help. Default none.
    pub down: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bind: "127.0.0.1:0".into(),
            post_search: true,
            drop_next_links: false,
            fault_after: 0,
            fail_first: 0,
            status_429_first: 0,
            fault_retry_after: None,
            reset_first: 0,
            truncate_first: 0,
            wrong_range_first: 0,
            stall_first: 0,
            stall_ms: 0,
            fault_every: 0,
            latency_ms: 0,
            down: Vec::new(),
        }
    }
}

async fn misbehave(State(opts): State<Arc<ServerOptions>>, req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if opts.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(opts.latency_ms)).await;
    }
    if opts.down.iter().any(|p| p == req.uri().path()) {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
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

/// The fault a data request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Unavailable,
    TooMany,
    Reset,
    Truncate,
    WrongRange,
    Stall,
}

/// State of [`inject_faults`]: the options and the one shared position in
/// the fault sequence.
#[derive(Debug)]
struct Faults {
    opts: ServerOptions,
    stats: Arc<ServerStats>,
    seen: AtomicU64,
}

impl Faults {
    /// Takes the next position in the sequence and says which fault it gets.
    fn next(&self) -> Fault {
        let o = &self.opts;
        if o.fail_first == 0
            && o.status_429_first == 0
            && o.reset_first == 0
            && o.truncate_first == 0
            && o.wrong_range_first == 0
            && o.stall_first == 0
            && o.fault_every == 0
        {
            return Fault::None;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let Some(mut k) = n.checked_sub(u64::from(o.fault_after)) else {
            return Fault::None;
        };
        for (count, fault) in [
            (o.fail_first, Fault::Unavailable),
            (o.status_429_first, Fault::TooMany),
            (o.reset_first, Fault::Reset),
            (o.truncate_first, Fault::Truncate),
            (o.wrong_range_first, Fault::WrongRange),
            (o.stall_first, Fault::Stall),
        ] {
            let count = u64::from(count);
            if k < count {
                return fault;
            }
            k -= count;
        }
        let every = u64::from(o.fault_every);
        if every > 0 && (k + 1).is_multiple_of(every) {
            const TURNS: [Fault; 4] = [
                Fault::Unavailable,
                Fault::Reset,
                Fault::Truncate,
                Fault::WrongRange,
            ];
            return TURNS[((k / every) % 4) as usize];
        }
        Fault::None
    }
}

/// Bodies of data answers are buffered to fault them; no COG range is larger.
const FAULT_BODY_LIMIT: usize = 256 << 20;
/// How long a reset answer waits, after sending half its body, before aborting.
const RESET_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// How far a wrong-range fault moves the range asked for, bytes.
const WRONG_RANGE_SHIFT: u64 = 16;

async fn inject_faults(
    State(faults): State<Arc<Faults>>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    if !req.uri().path().starts_with("/data/") {
        return next.run(req).await;
    }
    let fault = faults.next();
    let injected = || faults.stats.faults.fetch_add(1, Ordering::Relaxed);
    let status = match fault {
        Fault::None => return next.run(req).await,
        Fault::Unavailable => Some(StatusCode::SERVICE_UNAVAILABLE),
        Fault::TooMany => Some(StatusCode::TOO_MANY_REQUESTS),
        Fault::Stall => {
            injected();
            tokio::time::sleep(std::time::Duration::from_millis(faults.opts.stall_ms)).await;
            return next.run(req).await;
        }
        Fault::WrongRange => {
            let moved = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .map(|(a, b)| format!("bytes={}-{}", a + WRONG_RANGE_SHIFT, b + WRONG_RANGE_SHIFT));
            let Some(moved) = moved.and_then(|m| HeaderValue::from_str(&m).ok()) else {
                return next.run(req).await; // no single range: nothing to move
            };
            req.headers_mut().insert(header::RANGE, moved);
            injected();
            return next.run(req).await;
        }
        Fault::Reset | Fault::Truncate => None,
    };
    if let Some(status) = status {
        injected();
        let mut resp = status.into_response();
        if let Some(secs) = faults.opts.fault_retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return resp;
    }
    let resp = next.run(req).await;
    let faultable = match fault {
        Fault::Reset => matches!(resp.status().as_u16(), 200 | 206),
        _ => resp.status() == StatusCode::PARTIAL_CONTENT,
    };
    if !faultable {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FAULT_BODY_LIMIT).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    injected();
    let half = bytes.slice(..bytes.len() / 2);
    if fault == Fault::Truncate {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(half.len()));
        return Response::from_parts(parts, axum::body::Body::from(half));
    }
    // Reset: the full Content-Length stays, half the body goes out, then the
    // stream fails, which makes hyper abort the connection. The pause lets
    // hyper flush the status line, headers and first half before the abort;
    // without it hyper drops the connection with nothing sent, which is a
    // different fault (the client then never sees a response at all).
    use futures::StreamExt;
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(half) });
    let abort = futures::stream::once(async {
        tokio::time::sleep(RESET_PAUSE).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    let body = axum::body::Body::from_stream(first.chain(abort));
    Response::from_parts(parts, body)
}

/// A running loopback server for one world.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::demo::{Recipe, World, WorldServer};
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
            .map_err(|e| Error::invalid_because("bind address", bind, e))?;
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
        backend
            .add_collection(world.collection()?)
            .await
            .map_err(|e| Error::stac_because(&root, "adding the collection", e))?;
        let mut items = world.items()?;
        for layout in crate::demo::zarr_store::ZarrLayout::ALL {
            if let Some((c, zarr_items)) = world.zarr_catalog(layout)? {
                backend
                    .add_collection(c)
                    .await
                    .map_err(|e| Error::stac_because(&root, "adding a Zarr collection", e))?;
                items.extend(zarr_items);
            }
        }
        // The other collections (Sentinel-1, DEM, land cover) beside it;
        // their items after the optical ones.
        for c in world.collections() {
            let (collection, other_items) = world.other_collection(&c.id)?;
            backend.add_collection(collection).await.map_err(|e| {
                Error::stac_because(&root, format!("adding collection {}", c.id), e)
            })?;
            items.extend(other_items);
        }
        for mut item in items {
            for asset in item.assets.values_mut() {
                if let Some(rel) = asset.href.strip_prefix("../") {
                    asset.href = format!("{root}/{rel}");
                }
            }
            let id = item.id.clone();
            backend
                .add_item(item)
                .await
                .map_err(|e| Error::stac_because(&root, format!("adding item {id}"), e))?;
        }
        let api = Api::new(backend, &format!("{root}/"))
            .map_err(|e| Error::stac_because(&root, "building the API", e))?
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
            // Inside `count`, so the log shows the faulted statuses.
            .layer(middleware::from_fn_with_state(
                Arc::new(Faults {
                    opts: opts.clone(),
                    stats: stats.clone(),
                    seen: AtomicU64::new(0),
                }),
                inject_faults,
            ))
            .layer(middleware::from_fn_with_state(stats.clone(), count));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // TCP_NODELAY on every connection: with Nagle's algorithm a
        // response's body waits behind its headers for the client's
        // delayed ACK (up to 40 ms on Linux), which would make every round
        // trip on loopback look like one to another continent.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set on a demo-server connection");
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(opts: ServerOptions, n: usize) -> Vec<Fault> {
        let f = Faults {
            opts,
            stats: Arc::default(),
            seen: AtomicU64::new(0),
        };
        (0..n).map(|_| f.next()).collect()
    }

    #[test]
    fn faults_come_in_field_order_after_the_skipped_requests() {
        use Fault::{Reset, Stall, TooMany, Truncate, Unavailable, WrongRange};
        let ok = Fault::None;
        let opts = ServerOptions {
            fault_after: 1,
            fail_first: 2,
            status_429_first: 1,
            reset_first: 1,
            truncate_first: 2,
            wrong_range_first: 1,
            stall_first: 1,
            ..ServerOptions::default()
        };
        assert_eq!(
            sequence(opts, 11),
            [
                ok,
                Unavailable,
                Unavailable,
                TooMany,
                Reset,
                Truncate,
                Truncate,
                WrongRange,
                Stall,
                ok,
                ok
            ]
        );
        assert!(
            sequence(ServerOptions::default(), 5)
                .iter()
                .all(|&f| f == ok)
        );
        let every = ServerOptions {
            fault_every: 3,
            ..ServerOptions::default()
        };
        assert_eq!(
            sequence(every, 12),
            [
                ok,
                ok,
                Unavailable,
                ok,
                ok,
                Reset,
                ok,
                ok,
                Truncate,
                ok,
                ok,
                WrongRange
            ]
        );
    }
}
