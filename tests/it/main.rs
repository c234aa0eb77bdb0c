//! tilestack's integration tests: one binary (see STYLE.md), real servers on 127.0.0.1.

#[cfg(feature = "burn")]
mod burn_train;
mod catalogs;
mod cli;
mod cog;
#[cfg(feature = "burn")]
mod dataloader;
mod demo;
mod dry_run;
mod faults;
mod fuzz_replay;
mod geoparquet;
mod geotiff;
mod inputs;
mod pgstac;
mod real_items;
mod region;
mod search;
mod secrets;
mod sensors;
mod server;
#[cfg(feature = "burn")]
mod shards;
mod sign;
mod stack;
mod store;
#[cfg(feature = "burn")]
mod train;
mod util;
mod warp;
mod world;
mod zarr;
