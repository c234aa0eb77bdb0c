//! The burn adapter (feature `burn`): burn's multi-worker `DataLoader` over a
//! `StackLoader` yields every sample of the epoch exactly once, bit-identical
//! to the stacks `build` makes, with the loader's prefetch serving the workers.

use crate::util::{cog_reader, day, small_world};
use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::Device;
use std::sync::Arc;
use tilestack::BandName;
use tilestack::Mask;
use tilestack::TileBatcher;
use tilestack::demo::WorldServer;
use tilestack::{Catalog, StackRequest, build};
use tilestack::{LoaderOptions, StackLoader};

#[test]
fn burn_dataloader_yields_every_sample_once_bit_identical() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = small_world();
    let server = rt.block_on(WorldServer::start(world)).unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let mask = Mask::from_file(&world.terminals_path()).unwrap();
    let reqs: Vec<StackRequest> = (0..6)
        .map(|i| {
            let mut r = StackRequest::new(
                [-122.335 + 0.003 * i as f64, 37.805 + 0.002 * i as f64],
                BandName::parse_list("B04,B08").unwrap(),
                day(1),
                day(10),
            )
            .unwrap();
            r.tile_size = 48;
            r
        })
        .collect();
    // The expected images, NaN as 0 (the batcher's fill), one per sample.
    let want: Vec<Vec<u32>> = reqs
        .iter()
        .map(|r| {
            let s = rt
                .block_on(build(&cat, r, &cog_reader(), Some(&mask)))
                .unwrap()
                .stack;
            s.data
                .iter()
                .map(|v| if v.is_nan() { 0.0f32 } else { *v }.to_bits())
                .collect()
        })
        .collect();
    let opts = LoaderOptions {
        shuffle: Some(2),
        prefetch: 2,
        ..LoaderOptions::default()
    };
    let loader = Arc::new(StackLoader::plan(&cat, reqs, cog_reader(), Some(mask), opts).unwrap());
    let data = DataLoaderBuilder::new(TileBatcher { nan_fill: 0.0 })
        .batch_size(2)
        .num_workers(2)
        .set_device(Device::default())
        .build(loader.clone());
    for epoch in 0..2 {
        loader.set_epoch(epoch);
        let mut seen = vec![0; want.len()];
        for batch in data.iter() {
            let batch = batch.unwrap();
            let dims = batch.inputs.dims();
            assert_eq!(dims[1..], [10, 3, 48, 48], "T, bands + mask, H, W");
            assert_eq!(batch.pct_nans.dims(), [dims[0], 10]);
            let px = batch.inputs.into_data();
            let px = px.as_slice::<f32>().unwrap();
            for item in px.chunks(10 * 3 * 48 * 48) {
                let bits: Vec<u32> = item.iter().map(|v| v.to_bits()).collect();
                let i = want.iter().position(|w| *w == bits);
                let i = i.expect("every batched stack is one of the built stacks, bit for bit");
                seen[i] += 1;
            }
        }
        assert_eq!(seen, vec![1; 6], "epoch {epoch}: every sample exactly once");
    }
    let st = loader.stats();
    assert_eq!(st.ready + st.in_flight + st.on_demand, 12, "{st:?}");
    // Each worker's first position loads on demand; the rest were prefetched.
    assert!(st.ready + st.in_flight >= 8, "{st:?}");
    rt.block_on(server.shutdown());
}
