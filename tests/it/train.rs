//! burn's own `DataLoaderBuilder` (feature `burn`) over a `TileDataset` (burn's
//! `Dataset<TileStack>`, with `TileBatcher`): burn's multi-worker loader yields
//! every sample of the epoch exactly once, bit-identical to the stacks `build`
//! makes for the same requests, and a failing sample is an error naming it.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use tilestack::burn::TileBatcher;
use tilestack::{Catalog, TileStack, build};

use crate::dataloader::{Fixture, WEST};
use crate::util::cog_reader;

#[test]
fn burn_dataloader_over_a_tile_dataset_yields_every_sample_once_bit_identical() {
    let f = Fixture::new();
    let cfg = f.config(&WEST, None, "");
    let ds = f.dataset(&cfg);
    assert_eq!(Dataset::<TileStack>::len(&*ds), 5);
    let cat = Catalog::stac(&f.server.stac_url(), "sentinel-2-l2a").unwrap();
    // The expected images, NaN as 0 (the batcher's fill), one per sample,
    // from `build` on the requests the config makes.
    let want: Vec<Vec<u32>> = ds
        .samples()
        .iter()
        .map(|s| {
            let req = cfg.request(s.centroid, s.start, s.end).unwrap();
            let stack =
                f.rt.block_on(build(&cat, &req, &cog_reader(), None))
                    .unwrap()
                    .stack;
            stack
                .data
                .iter()
                .map(|v| if v.is_nan() { 0.0f32 } else { *v }.to_bits())
                .collect()
        })
        .collect();
    let data = DataLoaderBuilder::new(TileBatcher { nan_fill: 0.0 })
        .batch_size(2)
        .num_workers(2)
        .shuffle(7)
        .set_device(Device::default())
        .build(ds.clone());
    let per_sample = 6 * 2 * 32 * 32;
    for epoch in 0..2 {
        let mut seen = vec![0; want.len()];
        for batch in data.iter() {
            let batch = batch.expect("every sample loads");
            let dims = batch.inputs.dims();
            assert_eq!(dims[1..], [6, 2, 32, 32], "T, bands, H, W");
            assert_eq!(batch.pct_nans.dims(), [dims[0], 6]);
            let px = batch.inputs.into_data();
            let px = px.as_slice::<f32>().unwrap();
            for item in px.chunks(per_sample) {
                let bits: Vec<u32> = item.iter().map(|v| v.to_bits()).collect();
                let i = want.iter().position(|w| *w == bits);
                let i = i.expect("every batched stack is one of the built stacks, bit for bit");
                seen[i] += 1;
            }
        }
        assert_eq!(seen, vec![1; 5], "epoch {epoch}: every sample exactly once");
    }
}

#[test]
fn a_failing_sample_is_an_error_naming_it_and_async_code_is_refused() {
    let f = Fixture::new();
    let snapshot = f.broken_snapshot();
    let catalog = format!("snapshot = {snapshot:?}");
    let cfg = f.config(&[WEST[0], crate::dataloader::EAST], Some(&catalog), "");
    let ds = f.dataset(&cfg);
    let ok = Dataset::<TileStack>::get(&*ds, 0).expect("the western sample loads");
    assert_eq!(ok.data.dim(), (6, 2, 32, 32));
    let e = Dataset::<TileStack>::get(&*ds, 1).expect_err("granule B's hrefs 404");
    let text = format!("{e}");
    assert!(
        text.contains("sample 1") && text.contains(".missing"),
        "{text}"
    );
    // inside async code: an error, not a panic (use TileDataset::load there)
    let e = f.rt.block_on(async { ds.load_blocking(0) }).unwrap_err();
    assert!(e.to_string().contains("TileDataset::load"), "{e}");
}
