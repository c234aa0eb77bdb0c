//! The prefetching stack loader: the same stacks as `build`, loaded ahead of
//! the positions asked, in a seeded order split across ranks, within its
//! byte budget; errors name the sample. Plain threads call `get`, as a data
//! loader's workers do; the world server runs on its own runtime.

use crate::util::{cog_reader, day, small_world};
use tilestack::TileStack;
use tilestack::demo::WorldServer;
use tilestack::{BandName, Error};
use tilestack::{Catalog, StackRequest, build};
use tilestack::{LoaderOptions, StackLoader};

/// Requests around Oakland, a few hundred metres apart, 64 px at 10 m.
fn requests(bands: &str, n: usize) -> Vec<StackRequest> {
    (0..n)
        .map(|i| {
            let mut r = StackRequest::new(
                [-122.335 + 0.004 * i as f64, 37.805 + 0.003 * i as f64],
                BandName::parse_list(bands).unwrap(),
                day(1),
                day(12),
            )
            .unwrap();
            r.tile_size = 64;
            r
        })
        .collect()
}

/// A multi-thread runtime serving the small world (kept alive by the caller).
fn serve() -> (tokio::runtime::Runtime, WorldServer, Catalog) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(WorldServer::start(small_world())).unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    (rt, server, cat)
}

fn same(a: &TileStack, b: &TileStack) -> bool {
    let bits = |s: &TileStack| s.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    bits(a) == bits(b)
        && a.days == b.days
        && a.items == b.items
        && f(&a.pct_nans) == f(&b.pct_nans)
        && f(&a.eo_cloud_cover) == f(&b.eo_cloud_cover)
}

#[test]
fn loader_gives_the_built_stacks_and_prefetches_every_later_position() {
    let (rt, _server, cat) = serve();
    let reqs = requests("B04,B08", 5);
    let want: Vec<TileStack> = reqs
        .iter()
        .map(|r| {
            rt.block_on(build(&cat, r, &cog_reader(), None))
                .unwrap()
                .stack
        })
        .collect();
    let opts = LoaderOptions {
        shuffle: Some(11),
        prefetch: 2,
        ..LoaderOptions::default()
    };
    let loader = StackLoader::plan(&cat, reqs, cog_reader(), None, opts).unwrap();
    assert_eq!(loader.len(), 5);
    for epoch in 0..2 {
        loader.set_epoch(epoch);
        let order: Vec<usize> = (0..5).map(|p| loader.sample_at(p).unwrap()).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4], "a permutation");
        for (p, &sample) in order.iter().enumerate() {
            let got = loader.get(p).unwrap();
            assert!(same(&got, &want[sample]), "epoch {epoch} position {p}");
        }
    }
    let st = loader.stats();
    // Per epoch the first position loads on demand, every later one was
    // scheduled by the get before it.
    assert_eq!(st.on_demand, 2, "{st:?}");
    assert_eq!(st.ready + st.in_flight, 8, "{st:?}");
    assert!(st.peak_prefetch_bytes > 0 && st.wait_s > 0.0);
}

#[test]
fn orders_are_seeded_and_ranks_get_disjoint_equal_shares() {
    let (_rt, _server, cat) = serve();
    let reqs = requests("B04", 7);
    let order = |opts: LoaderOptions, epoch: u64| {
        let l = StackLoader::plan(&cat, reqs.clone(), cog_reader(), None, opts).unwrap();
        l.set_epoch(epoch);
        (0..l.len())
            .map(|p| l.sample_at(p).unwrap())
            .collect::<Vec<_>>()
    };
    let seeded = LoaderOptions {
        shuffle: Some(5),
        ..LoaderOptions::default()
    };
    assert_eq!(order(seeded.clone(), 0), order(seeded.clone(), 0));
    assert_ne!(order(seeded.clone(), 0), order(seeded.clone(), 1));
    assert_eq!(
        order(LoaderOptions::default(), 3),
        (0..7).collect::<Vec<_>>()
    );
    // 7 samples over 3 ranks: 2 each (the 7th is left out of this epoch)
    let shares: Vec<Vec<usize>> = (0..3)
        .map(|rank| {
            order(
                LoaderOptions {
                    rank: (rank, 3),
                    ..seeded.clone()
                },
                2,
            )
        })
        .collect();
    assert!(shares.iter().all(|s| s.len() == 2), "{shares:?}");
    let mut all: Vec<usize> = shares.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "disjoint: {shares:?}");
    let e = StackLoader::plan(
        &cat,
        reqs,
        cog_reader(),
        None,
        LoaderOptions {
            rank: (3, 3),
            ..LoaderOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("rank 3 of 3"), "{e}");
}

#[test]
fn prefetch_stays_within_its_byte_budget() {
    let (_rt, _server, cat) = serve();
    let reqs = requests("B04,B03", 4);
    // one 12-day × 2-band × 64² stack
    let one = 12 * 2 * 64 * 64 * 4;
    let run = |budget: u64| {
        let opts = LoaderOptions {
            prefetch: 3,
            prefetch_bytes: budget,
            ..LoaderOptions::default()
        };
        let l = StackLoader::plan(&cat, reqs.clone(), cog_reader(), None, opts).unwrap();
        for p in 0..l.len() {
            l.get(p).unwrap();
        }
        l.stats()
    };
    let st = run(one);
    assert_eq!(st.peak_prefetch_bytes, one, "{st:?}");
    assert_eq!((st.on_demand, st.ready + st.in_flight), (1, 3), "{st:?}");
    let st = run(one - 1);
    assert_eq!(st.peak_prefetch_bytes, 0, "{st:?}");
    assert_eq!(st.on_demand, 4, "nothing fits: every stack on demand");
    let st = run(10 * one);
    assert_eq!(st.peak_prefetch_bytes, 3 * one, "three ahead: {st:?}");

    // Two workers over contiguous chunks, as burn's loader splits them:
    // worker B takes position 2 first, then worker A's window (0 → 1, 2, 3)
    // must not load position 2 again.
    let opts = LoaderOptions {
        prefetch: 3,
        ..LoaderOptions::default()
    };
    let l = StackLoader::plan(&cat, reqs.clone(), cog_reader(), None, opts).unwrap();
    for p in [2, 0, 1, 3] {
        l.get(p).unwrap();
    }
    let st = l.stats();
    // get(2) schedules 3; get(0) schedules 1 (2 was asked, 3 is loading)
    assert_eq!(st.peak_prefetch_bytes, 2 * one, "{st:?}");
    assert_eq!((st.on_demand, st.ready + st.in_flight), (2, 2), "{st:?}");
}

#[test]
fn errors_name_the_sample_or_the_position() {
    let (rt, server, cat) = serve();
    let mut reqs = requests("B04", 3);
    reqs[1].bands = BandName::parse_list("B04,B99").unwrap();
    let e =
        StackLoader::plan(&cat, reqs, cog_reader(), None, LoaderOptions::default()).unwrap_err();
    assert!(
        matches!(&e, tilestack::Error::Sample { index: 1, .. }),
        "{e:?}"
    );
    let msg = e.chain();
    assert!(msg.contains("sample 1 at") && msg.contains("B99"), "{msg}");

    // samples of different shapes cannot share a loader (nor a batch)
    let mut reqs = requests("B04", 2);
    reqs[1].tile_size = 32;
    let e =
        StackLoader::plan(&cat, reqs, cog_reader(), None, LoaderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("sample 1 has shape"), "{e}");

    // sample 1: later days, so files no earlier read has touched
    let mut reqs = requests("B04", 2);
    reqs[1].start = day(13);
    reqs[1].end = day(24);
    let loader =
        StackLoader::plan(&cat, reqs, cog_reader(), None, LoaderOptions::default()).unwrap();
    assert!(!loader.plans()[1].reads.is_empty());
    let e = loader.get(2).unwrap_err();
    assert!(
        matches!(e, Error::Invalid { .. }) && e.to_string().contains("past"),
        "{e}"
    );
    // inside an async runtime `get` refuses rather than blocking a worker
    let e = rt.block_on(async { loader.get(0) }).unwrap_err();
    assert!(e.to_string().contains("load(position).await"), "{e}");
    assert!(rt.block_on(loader.load(0)).is_ok());
    // inside async code: `plan` refuses; `from_plans` builds, and dropping
    // the loader there does not panic
    let plans = loader.plans().to_vec();
    rt.block_on(async {
        let e = StackLoader::plan(
            &cat,
            requests("B04", 1),
            cog_reader(),
            None,
            LoaderOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("async runtime"), "{e}");
        let l =
            StackLoader::from_plans(plans, cog_reader(), None, LoaderOptions::default()).unwrap();
        assert_eq!(l.len(), 2);
        drop(l);
    });
    // the server gone: the read error names the URL, never a zero stack
    rt.block_on(server.shutdown());
    let e = loader.get(1).unwrap_err();
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
}

#[test]
fn failing_reads_fail_their_get_whether_prefetched_or_not_and_the_loader_goes_on() {
    use tilestack::demo::ServerOptions;
    use tilestack::{CogReader, TileCache};
    use tilestack::{HttpRangeClient, RetryConfig};
    let rt = tokio::runtime::Runtime::new().unwrap();
    // every COG request answers 503; the searches pass
    let opts = ServerOptions {
        fail_first: u32::MAX,
        ..ServerOptions::default()
    };
    let server = rt
        .block_on(WorldServer::start_with(small_world(), opts))
        .unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let no_retries = || {
        CogReader::new(
            HttpRangeClient::new(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .unwrap(),
            TileCache::new(1 << 30),
        )
    };
    let mut reqs = requests("B04", 3);
    let loader = StackLoader::plan(
        &cat,
        reqs.clone(),
        no_retries(),
        None,
        LoaderOptions::default(),
    )
    .unwrap();
    for p in 0..3 {
        let e = loader.get(p).unwrap_err().to_string();
        assert!(
            e.contains("503") && e.contains("/data/"),
            "position {p}: {e}"
        );
    }
    let st = loader.stats();
    assert_eq!((st.on_demand, st.ready + st.in_flight), (1, 2), "{st:?}");
    // asked for: NaN stacks with the failures listed, never zeros
    for r in &mut reqs {
        r.errors_as_nodata = true;
    }
    let loader =
        StackLoader::plan(&cat, reqs, no_retries(), None, LoaderOptions::default()).unwrap();
    for p in 0..3 {
        let s = loader.get(p).unwrap();
        assert!(s.data.iter().all(|v| v.is_nan()), "position {p}");
        assert!(!s.read_errors.is_empty() && s.read_errors.iter().all(|e| e.contains("503")));
    }
    rt.block_on(server.shutdown());
}
