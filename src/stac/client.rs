//! STAC API item search: POST `/search` (GET when the server answers POST
//! with 405), following `next` links until exhausted or a cap.
//!
//! Users lose data silently with the Python tools when pages are cut off;
//! here every page is followed, ids are de-duplicated, and a full page
//! without a `next` link is reported as possibly truncated.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Cause, Error, Result, Warning};
use crate::stac::snapshot::item_from_json;
use crate::units::TimeRange;

/// A STAC item search request (the item-search spec's fields).
///
/// # Examples
/// ```
/// use tilestack::stac::SearchRequest;
/// let req = SearchRequest::new("sentinel-2-l2a")
///     .bbox([-122.35, 37.79, -122.31, 37.83])
///     .datetime("2019-08-01/2019-08-30")
///     .unwrap();
/// assert_eq!(req.datetime.as_deref(), Some("2019-08-01T00:00:00Z/2019-08-30T23:59:59Z"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Collection ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// `[west, south, east, north]`, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// A GeoJSON geometry (exclusive with `bbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intersects: Option<Value>,
    /// RFC 3339 interval `start/end` (`..` for open ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    /// The `query` extension, e.g. `{"eo:cloud_cover": {"lt": 20}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// Page size asked of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Sort fields, e.g. `[{"field": "properties.datetime", "direction": "asc"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sortby: Option<Value>,
}

impl SearchRequest {
    /// A search of one collection.
    pub fn new(collection: impl Into<String>) -> Self {
        SearchRequest {
            collections: vec![collection.into()],
            limit: Some(100),
            ..Default::default()
        }
    }

    /// Sets the bounding box.
    pub fn bbox(mut self, bbox: [f64; 4]) -> Self {
        self.bbox = Some(bbox);
        self
    }

    /// Sets the time range. Date-only ends are expanded to whole UTC days
    /// (`2019-08-30` → `2019-08-30T23:59:59Z` as an end) because servers
    /// such as pgstac reject anything but full RFC 3339.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unparseable range or one whose end precedes its start.
    pub fn datetime(mut self, range: &str) -> Result<Self> {
        self.datetime = Some(normalize_datetime(range)?);
        Ok(self)
    }

    /// Sets the `query` extension filter.
    pub fn query(mut self, q: Value) -> Self {
        self.query = Some(q);
        self
    }
}

/// Normalizes `start/end` (dates or RFC 3339, `..` open) to full RFC 3339.
///
/// # Errors
/// [`Error::Invalid`] naming the range.
pub fn normalize_datetime(range: &str) -> Result<String> {
    Ok(range.parse::<TimeRange>()?.to_stac())
}

/// What a search returned.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// Items, de-duplicated by id, in server order.
    pub items: Vec<stac::Item>,
    /// Pages fetched.
    pub pages: usize,
    /// Warnings (possible truncation, duplicate ids, cap reached).
    pub warnings: Vec<Warning>,
}

/// A STAC API client.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::stac::{SearchRequest, StacClient};
/// let client = StacClient::new("http://127.0.0.1:8090/").unwrap();
/// let res = client.search(&SearchRequest::new("sentinel-2-l2a")).await.unwrap();
/// println!("{} items", res.items.len());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct StacClient {
    root: url::Url,
    http: reqwest::Client,
    /// Stop after this many items (default 10 000).
    pub max_items: usize,
}

impl StacClient {
    /// A client for the API whose landing page is `root`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL (the URL parser's error as
    /// its source); [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(root: &str) -> Result<Self> {
        let mut s = root.to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        let root = url::Url::parse(&s).map_err(|e| Error::invalid_because("STAC URL", root, e))?;
        Ok(StacClient {
            root,
            http: http_client(DEFAULT_SEARCH_TIMEOUT)?,
            max_items: 10_000,
        })
    }

    /// The same client with another limit on each request (connecting,
    /// sending, and reading the whole answer). Default 60 s: a server that
    /// never answers is an error naming its URL, never a hang.
    ///
    /// # Errors
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Result<Self> {
        self.http = http_client(timeout)?;
        Ok(self)
    }

    /// The landing page URL.
    pub fn root(&self) -> &url::Url {
        &self.root
    }

    async fn send_json(&self, req: reqwest::RequestBuilder, url: &str) -> Result<Value> {
        let http = |m: &str, status: Option<u16>, e: reqwest::Error| Error::Http {
            url: url.to_string(),
            status,
            message: m.to_string(),
            source: Some(Cause::new(e.without_url())),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| http("request failed", None, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| http("reading the body failed", Some(status.as_u16()), e))?;
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            return Err(Error::Http {
                url: url.to_string(),
                status: Some(status.as_u16()),
                message: format!("status {status}: {snippet}"),
                source: None,
            });
        }
        serde_json::from_str(&text).map_err(|e| Error::stac_because(url, "response is not JSON", e))
    }

    /// The conformance classes the landing page declares (`conformsTo`).
    ///
    /// # Errors
    /// [`Error::Http`] naming the URL; [`Error::Stac`] when the page is not JSON.
    pub async fn conformance(&self) -> Result<Vec<String>> {
        let url = self.root.to_string();
        let page = self
            .send_json(self.http.get(self.root.clone()), &url)
            .await?;
        Ok(page
            .get("conformsTo")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether the API declares the `query` extension of item search. A
    /// server that does not may answer a search with a `query` with no item
    /// at all (stac-server's memory backend does), so filter on the client.
    ///
    /// # Errors
    /// As [`StacClient::conformance`].
    pub async fn supports_query(&self) -> Result<bool> {
        Ok(self
            .conformance()
            .await?
            .iter()
            .any(|c| c.contains("item-search") && c.ends_with("#query")))
    }

    /// Runs a search and follows every `next` link (up to `max_items`).
    ///
    /// # Errors
    /// [`Error::Http`] for transport/status errors, [`Error::Stac`] for a
    /// response that is not a FeatureCollection, [`Error::Item`] for an
    /// item that does not parse (naming its id).
    #[tracing::instrument(level = "info", name = "search", skip_all, fields(url = %self.root))]
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResults> {
        let t0 = std::time::Instant::now();
        let search_url = self
            .root
            .join("search")
            .map_err(|e| Error::invalid_because("STAC URL", format!("{}search", self.root), e))?;
        let body = serde_json::to_value(req).unwrap_or_default();
        let mut next: Option<Page> = Some(Page::Post {
            url: search_url.to_string(),
            body,
        });
        let mut out = SearchResults {
            items: Vec::new(),
            pages: 0,
            warnings: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        let mut asked = std::collections::HashSet::new();
        let mut last_body = Map::new();
        while let Some(page) = next.take() {
            // A server whose `next` link leads back to a page already read
            // would otherwise be paged forever.
            let key = match &page {
                Page::Post { url, body } => format!("POST {url} {body}"),
                Page::Get { url } => format!("GET {url}"),
            };
            if !asked.insert(key) {
                out.warnings.push(Warning::PagingLoop {
                    page: out.pages,
                    reason: "repeated next link".into(),
                });
                break;
            }
            let (url, value) = match &page {
                Page::Post { url, body } => {
                    if let Value::Object(m) = body {
                        last_body = m.clone();
                    }
                    match self.send_json(self.http.post(url).json(body), url).await {
                        Err(Error::Http {
                            status: Some(405), ..
                        }) if out.pages == 0 => {
                            // A GET-only server: send the same search as query parameters.
                            let get = get_url(url, req)?;
                            (
                                get.clone(),
                                self.send_json(self.http.get(&get), &get).await?,
                            )
                        }
                        other => (url.clone(), other?),
                    }
                }
                Page::Get { url } => (url.clone(), self.send_json(self.http.get(url), url).await?),
            };
            out.pages += 1;
            let features = value
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    Error::stac(&url, "not a FeatureCollection (no \"features\" array)")
                })?;
            let n = features.len();
            let before = out.items.len();
            for f in features {
                let id = f
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("<no id>")
                    .to_string();
                let item: stac::Item = item_from_json(f)
                    .map_err(|e| Error::item_because(&id, "not a STAC item", e))?;
                let other = item
                    .collection
                    .as_ref()
                    .filter(|c| !req.collections.is_empty() && !req.collections.contains(c));
                if let Some(c) = other {
                    // A server that ignores `collections` (or a shared
                    // index): another collection's bands are not this one's.
                    out.warnings.push(Warning::OtherCollection {
                        id,
                        collection: c.clone(),
                    });
                } else if seen.insert(item.id.clone()) {
                    out.items.push(item);
                } else {
                    out.warnings.push(Warning::DuplicateItem {
                        id,
                        page: out.pages,
                    });
                }
                if out.items.len() >= self.max_items {
                    out.warnings.push(Warning::MaxItems {
                        max_items: self.max_items,
                    });
                    return Ok(out);
                }
            }
            next = next_page(&value, &last_body, &url)?;
            if n == 0 {
                next = None;
            } else if out.items.len() == before && next.is_some() {
                // Only items already returned: following on cannot add any.
                out.warnings.push(Warning::PagingLoop {
                    page: out.pages,
                    reason: "page added no new item".into(),
                });
                next = None;
            }
            // A server that says how many items match settles it; otherwise a
            // full last page is suspicious (Planetary Computer has dropped
            // `next` links), though a correct server whose total is a multiple
            // of the page size (pgstac sends no numberMatched) looks the same.
            let matched = value
                .get("numberMatched")
                .or_else(|| value.get("context").and_then(|c| c.get("matched")))
                .and_then(Value::as_u64);
            if next.is_none()
                && let Some(limit) = req.limit
                && n as u64 >= limit
                && n > 0
                && matched.is_none_or(|m| m > (out.items.len() + dup_count(&out.warnings)) as u64)
            {
                out.warnings.push(Warning::MaybeTruncated {
                    page: out.pages,
                    items: n,
                });
            }
        }
        tracing::info!(
            items = out.items.len(),
            pages = out.pages,
            warnings = out.warnings.len(),
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "search done"
        );
        Ok(out)
    }
}

/// How long one search request may take by default (see [`StacClient::with_timeout`]).
pub const DEFAULT_SEARCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .map_err(|e| Error::internal_because("STAC client", "cannot build the HTTP client", e))
}

/// The GET form of a search: the same fields as query parameters, with
/// `intersects`, `query` and `sortby` JSON-encoded.
fn get_url(post_url: &str, req: &SearchRequest) -> Result<String> {
    let mut url =
        url::Url::parse(post_url).map_err(|e| Error::invalid_because("STAC URL", post_url, e))?;
    {
        let mut q = url.query_pairs_mut();
        if !req.collections.is_empty() {
            q.append_pair("collections", &req.collections.join(","));
        }
        if let Some(b) = req.bbox {
            q.append_pair("bbox", &format!("{},{},{},{}", b[0], b[1], b[2], b[3]));
        }
        if let Some(d) = &req.datetime {
            q.append_pair("datetime", d);
        }
        if let Some(l) = req.limit {
            q.append_pair("limit", &l.to_string());
        }
        for (k, v) in [
            ("intersects", &req.intersects),
            ("query", &req.query),
            ("sortby", &req.sortby),
        ] {
            if let Some(v) = v {
                q.append_pair(k, &v.to_string());
            }
        }
    }
    Ok(url.to_string())
}

/// Duplicates seen so far (they were returned but not kept).
fn dup_count(warnings: &[Warning]) -> usize {
    warnings
        .iter()
        .filter(|w| matches!(w, Warning::DuplicateItem { .. }))
        .count()
}

#[derive(Debug)]
enum Page {
    Post { url: String, body: Value },
    Get { url: String },
}

/// The `rel=next` link of a page: GET href, or POST with `body` (merged over
/// the previous body when `merge` is true).
fn next_page(page: &Value, prev_body: &Map<String, Value>, url: &str) -> Result<Option<Page>> {
    let Some(links) = page.get("links").and_then(Value::as_array) else {
        return Ok(None);
    };
    let Some(link) = links
        .iter()
        .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
    else {
        return Ok(None);
    };
    let href = link
        .get("href")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::stac(url, "next link without href"))?
        .to_string();
    let method = link.get("method").and_then(Value::as_str).unwrap_or("GET");
    if method.eq_ignore_ascii_case("POST") {
        let merge = link.get("merge").and_then(Value::as_bool).unwrap_or(false);
        let body = match link.get("body") {
            Some(Value::Object(b)) if merge => {
                let mut m = prev_body.clone();
                for (k, v) in b {
                    m.insert(k.clone(), v.clone());
                }
                Value::Object(m)
            }
            Some(b) => b.clone(),
            None => Value::Object(prev_body.clone()),
        };
        Ok(Some(Page::Post { url: href, body }))
    } else {
        Ok(Some(Page::Get { url: href }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_datetime_is_the_time_range_parser() {
        // the parsing itself is tested with TimeRange (units.rs)
        let d = SearchRequest::new("c").datetime("2019-08-01/..").unwrap();
        assert_eq!(d.datetime.as_deref(), Some("2019-08-01T00:00:00Z/.."));
        assert!(
            SearchRequest::new("c")
                .datetime("2019-08-30/2019-08-01")
                .is_err()
        );
    }

    #[test]
    fn merge_next_body() {
        let prev: Map<String, Value> =
            serde_json::from_str(r#"{"limit": 2, "collections": ["c"]}"#).unwrap();
        let page: Value = serde_json::from_str(
            r#"{"links": [{"rel": "next", "href": "http://x/search", "method": "POST", "body": {"skip": 2}, "merge": true}]}"#,
        )
        .unwrap();
        match next_page(&page, &prev, "u").unwrap() {
            Some(Page::Post { body, .. }) => {
                assert_eq!(body["skip"], 2);
                assert_eq!(body["limit"], 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
