//! `s3://` hrefs through object_store against a real S3 API on 127.0.0.1:
//! moto's server (`pip install 'moto[server]'`, which `tests/run.sh` does).
//! Without moto these tests fail, saying how to install it: a run that
//! could not test S3 never looks green.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tilestack::cog::TileCache;
use tilestack::demo::WorldServer;
use tilestack::fetch::RetryConfig;
use tilestack::fetch::object_store::aws::AmazonS3Builder;
use tilestack::fetch::object_store::{ObjectStoreExt, PutPayload};
use tilestack::geo::PixelWindow;
use tilestack::{CogReader, Error, HttpRangeClient};

use crate::util::small_world;

const BUCKET: &str = "tiles";

/// A moto S3 server on a free loopback port, killed on drop.
pub(crate) struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Started and answering; panics, saying what to install, without moto.
    pub(crate) async fn start() -> Moto {
        let importable = Command::new("python3")
            .args(["-c", "import moto.server, flask"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            importable,
            "python3 cannot import moto's server: pip install 'moto[server]' flask, \
             or run ./tests/run.sh, which installs tests/py/requirements.txt"
        );
        // A port free a moment ago; moto binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding a loopback port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m moto.server");
        let mut moto = Moto { child, port };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(moto.url()).send().await
                && r.status().is_success()
            {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on {}",
                moto.url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A client whose `s3://tiles` is the moto server, holding `files` (key,
/// local path), configured in code: tests must not touch `AWS_*` variables.
pub(crate) async fn client_with_bucket(
    moto: &Moto,
    files: &[(&str, std::path::PathBuf)],
) -> HttpRangeClient {
    let created = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.url()))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.status());
    let s3 = AmazonS3Builder::new()
        .with_endpoint(moto.url())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    for (key, path) in files {
        let body = std::fs::read(path).unwrap();
        s3.put(&(*key).into(), PutPayload::from(body))
            .await
            .unwrap();
    }
    let client = HttpRangeClient::new(RetryConfig::default()).unwrap();
    client
        .object_stores()
        .register(&format!("s3://{BUCKET}"), Arc::new(s3))
        .unwrap();
    client
}

fn band_rel(scene: usize, band: &str) -> String {
    let id = &small_world().manifest().scenes[scene].id;
    format!("data/{id}/{band}.tif")
}

#[tokio::test]
async fn s3_window_equals_http_window() {
    let moto = Moto::start().await;
    let rel = band_rel(3, "B04");
    let client = client_with_bucket(&moto, &[(&rel, small_world().dir().join(&rel))]).await;
    let s3_href = format!("s3://{BUCKET}/{rel}");
    let server = WorldServer::start(small_world()).await.unwrap();
    let http_href = format!("{}/{rel}", server.url());

    let http = CogReader::new(
        HttpRangeClient::new(RetryConfig::default()).unwrap(),
        TileCache::new(1 << 30),
    );
    let s3 = CogReader::new(client.clone(), TileCache::new(1 << 30));
    for (ifd, col, row, w, h) in [
        (0, 250, 250, 300, 300),
        (0, 700, 700, 100, 100),
        (1, 0, 0, 384, 384),
    ] {
        let want = http
            .read_window(&http_href, ifd, PixelWindow::new(col, row, w, h))
            .await
            .unwrap();
        let got = s3
            .read_window(&s3_href, ifd, PixelWindow::new(col, row, w, h))
            .await
            .unwrap();
        assert_eq!(got.dim(), want.dim());
        assert!(
            got.iter()
                .zip(want.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "ifd {ifd} window ({col},{row}) {w}x{h} differs"
        );
    }
    // The same range reads, so the same requests and bytes, counted alike.
    let (m_s3, m_http) = (client.metrics(), http.client().metrics());
    assert!(m_s3.requests() > 0 && m_s3.bytes() > 0);
    assert_eq!(
        (m_s3.requests(), m_s3.bytes()),
        (m_http.requests(), m_http.bytes())
    );
}

#[tokio::test]
async fn s3_range_contract_and_errors() {
    let moto = Moto::start().await;
    let rel = band_rel(0, "B02");
    let path = small_world().dir().join(&rel);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::read(&path).unwrap();
    let client = client_with_bucket(&moto, &[(&rel, path)]).await;
    let href = format!("s3://{BUCKET}/{rel}");

    // Exact ranges.
    let b = client.get_range(&href, 100..1124).await.unwrap();
    assert_eq!(&b[..], &file[100..1124]);
    let before = client.metrics().requests();

    // Reading to EOF: the short tail, or nothing at all, never an error.
    let tail = client
        .get_range_to_eof(&href, len - 10..len + 1000)
        .await
        .unwrap();
    assert_eq!(&tail[..], &file[(len - 10) as usize..]);
    let none = client
        .get_range_to_eof(&href, len + 5..len + 100)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(client.metrics().requests() >= before + 2);

    // The exact contract fails on a short object, naming URL and range.
    for range in [len - 10..len + 1000, len + 5..len + 100] {
        let e = client.get_range(&href, range.clone()).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Http { url, .. } if *url == href),
            "{e:?}"
        );
        assert!(
            msg.contains(&format!("bytes {}..{}", range.start, range.end))
                && msg.contains(&format!("only {len} bytes")),
            "{msg}"
        );
    }

    // A missing key: an HTTP error naming the s3 URL, from the COG reader too.
    let missing = format!("s3://{BUCKET}/no/such/B04.tif");
    let e = client.get_range(&missing, 0..16).await.unwrap_err();
    assert!(
        matches!(&e, Error::Http { url, .. } if *url == missing),
        "{e:?}"
    );
    let reader = CogReader::new(client.clone(), TileCache::new(1 << 20));
    let msg = reader
        .read_window(&missing, 0, PixelWindow::new(0, 0, 8, 8))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&missing), "{msg}");

    // An unreachable store (a closed loopback port): an error naming the URL.
    let unknown = "s3://tilestack-no-such-bucket-configured/x.tif";
    let fresh = HttpRangeClient::new(RetryConfig {
        max_retries: 0,
        request_timeout: Duration::from_secs(2),
        ..RetryConfig::default()
    })
    .unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = AmazonS3Builder::new()
        .with_endpoint(format!("http://{closed}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("tilestack-no-such-bucket-configured")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_retry(tilestack::fetch::object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    fresh
        .object_stores()
        .register("s3://tilestack-no-such-bucket-configured", Arc::new(dead))
        .unwrap();
    let e = fresh.get_range(unknown, 0..16).await.unwrap_err();
    assert!(
        matches!(&e, Error::Http { url, .. } if url == unknown),
        "{e:?}"
    );
}
