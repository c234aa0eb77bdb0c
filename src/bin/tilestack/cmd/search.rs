//! `tilestack search`: one STAC search, its items listed (and saved).

use anyhow::Result;
use tilestack::stac::{SearchRequest, SearchResults, StacClient};

use crate::args::SearchArgs;

/// `tilestack search`.
pub(crate) async fn run(a: &SearchArgs) -> Result<()> {
    let mut req = SearchRequest::new(a.collection.clone())
        .bbox(a.bbox()?)
        .datetime(&a.time)?;
    req.limit = Some(a.limit);
    if let Some(q) = a.query()? {
        req = req.query(q);
    }
    let mut client = StacClient::new(&a.stac)?;
    client.max_items = a.max_items;
    let res = client.search(&req).await?;
    print_results(&res);
    if let Some(p) = &a.save {
        tilestack::stac::save_snapshot(&res.items, p)?;
        println!("saved {} items to {}", res.items.len(), p.display());
    }
    Ok(())
}

/// The items as a table (id, datetime, cloud %, CRS), then the warnings and
/// the total.
fn print_results(res: &SearchResults) {
    println!(
        "{:<62} {:<20} {:>7} {:>11}",
        "id", "datetime", "cloud%", "crs"
    );
    for it in &res.items {
        let dt = it
            .properties
            .datetime
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let extra = &it.properties.additional_fields;
        let cloud = extra
            .get("eo:cloud_cover")
            .and_then(|v| v.as_f64())
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "-".into());
        let crs = extra
            .get("proj:code")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                extra
                    .get("proj:epsg")
                    .and_then(|v| v.as_u64())
                    .map(|e| format!("EPSG:{e}"))
            })
            .unwrap_or_else(|| "-".into());
        println!("{:<62} {:<20} {:>7} {:>11}", it.id, dt, cloud, crs);
    }
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    println!("total: {} items in {} pages", res.items.len(), res.pages);
}
