//! The STAC client against servers that misbehave on purpose (hand-written
//! HTTP on 127.0.0.1): bounded work, never a hang or an endless loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tilestack::Warning;
use tilestack::stac::{SearchRequest, StacClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves every request with `answer(n, addr)` (n = 0, 1, …), or never answers when it returns None.
async fn serve(
    answer: impl Fn(usize, std::net::SocketAddr) -> Option<String> + Send + Sync + 'static,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (answer, n) = (Arc::new(answer), count.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (answer, n) = (answer.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                let _ = sock.read(&mut buf).await;
                let i = n.fetch_add(1, Ordering::SeqCst);
                match answer(i, addr) {
                    Some(body) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(body.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            });
        }
    });
    (addr, count)
}

fn item(id: &str) -> String {
    format!(
        r#"{{"type": "Feature", "stac_version": "1.0.0", "id": "{id}", "links": [], "assets": {{}},
            "geometry": null, "properties": {{"datetime": "2019-08-01T00:00:00Z"}}}}"#
    )
}

#[tokio::test]
async fn a_next_link_that_repeats_stops_paging_with_a_warning() {
    // Every page has a new item and the same `next` link.
    let (addr, count) = serve(|i, addr| {
        Some(format!(
            r#"{{"type": "FeatureCollection", "features": [{}],
                "links": [{{"rel": "next", "method": "GET", "href": "http://{addr}/search?token=same"}}]}}"#,
            item(&format!("i{i}"))
        ))
    })
    .await;
    let client = StacClient::new(&format!("http://{addr}")).unwrap();
    let res = client.search(&SearchRequest::new("c")).await.unwrap();
    assert_eq!(res.items.len(), 2, "the first page and the linked one");
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "no request after the repeat"
    );
    assert!(
        res.warnings.iter().any(
            |w| matches!(w, Warning::PagingLoop { reason, .. } if reason == "repeated next link")
        ),
        "{:?}",
        res.warnings
    );
}

#[tokio::test]
async fn a_page_of_items_already_seen_stops_paging() {
    // The same item on every page, each with a new `next` link.
    let (addr, count) = serve(|i, addr| {
        Some(format!(
            r#"{{"type": "FeatureCollection", "features": [{}],
                "links": [{{"rel": "next", "method": "GET", "href": "http://{addr}/search?token={i}"}}]}}"#,
            item("same")
        ))
    })
    .await;
    let client = StacClient::new(&format!("http://{addr}")).unwrap();
    let res = client.search(&SearchRequest::new("c")).await.unwrap();
    assert_eq!(res.items.len(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(
        res.warnings
            .iter()
            .any(|w| w.to_string().contains("added no new item"))
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_an_error_naming_it_not_a_hang() {
    let (addr, _) = serve(|_, _| None).await;
    let client = StacClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_millis(500))
        .unwrap();
    let t = Instant::now();
    let err = client.search(&SearchRequest::new("c")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let msg = err.chain();
    assert!(msg.contains(&addr.to_string()), "{msg}");
}

#[tokio::test]
async fn items_of_another_collection_and_repeated_ids_are_skipped_with_warnings() {
    // A server that ignores `collections`: one page, three items of "c",
    // one of "landsat", and a repeated id.
    let (addr, _) = serve(|_, _| {
        let of = |id: &str, c: &str| {
            item(id).replacen(
                "\"links\"",
                &format!("\"collection\": \"{c}\", \"links\""),
                1,
            )
        };
        Some(format!(
            r#"{{"type": "FeatureCollection", "features": [{}, {}, {}, {}, {}], "links": []}}"#,
            of("a", "c"),
            of("l", "landsat"),
            of("b", "c"),
            of("a", "c"),
            item("no-collection"),
        ))
    })
    .await;
    let client = StacClient::new(&format!("http://{addr}")).unwrap();
    let res = client.search(&SearchRequest::new("c")).await.unwrap();
    let ids: Vec<&str> = res.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "no-collection"]);
    let text: Vec<String> = res.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        res.warnings.contains(&Warning::OtherCollection {
            id: "l".into(),
            collection: "landsat".into()
        }),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t == "duplicate item a on page 1"),
        "{text:?}"
    );
}

#[tokio::test]
async fn a_snapshot_that_repeats_an_item_plans_it_once_and_says_so() {
    let mut json: serde_json::Value = serde_json::from_str(&item("x")).unwrap();
    json["geometry"] = serde_json::json!({"type": "Polygon", "coordinates": [[
        [-122.5, 37.5], [-122.0, 37.5], [-122.0, 38.0], [-122.5, 38.0], [-122.5, 37.5]]]});
    json["properties"]["proj:epsg"] = serde_json::json!(32610);
    json["assets"] = serde_json::json!({"B04": {"href": "http://127.0.0.1:9/b04.tif",
        "proj:transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0], "proj:shape": [100, 100]}});
    let it: stac::Item = serde_json::from_value(json).unwrap();
    let req = tilestack::StackRequest::new(
        [-122.33, 37.81],
        tilestack::BandName::parse_list("B04").unwrap(),
        "2019-08-01".parse().unwrap(),
        "2019-08-02".parse().unwrap(),
    )
    .unwrap();
    let (plan, items) =
        tilestack::plan_stack(&tilestack::Catalog::Items(vec![it.clone(), it]), &req)
            .await
            .unwrap();
    assert_eq!((plan.scenes.len(), items.len()), (1, 1));
    let text: Vec<String> = plan.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        text.contains(&"duplicate item x in the items given (kept once)".to_string()),
        "{text:?}"
    );
}
