#![no_main]
//! See `fuzz/bodies.rs`.

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(
    init: bodies::init(),
    |data: &[u8]| bodies::zarr_store(data)
);
