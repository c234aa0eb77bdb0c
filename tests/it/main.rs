//! tilestack's integration tests: one binary (see STYLE.md), real servers on 127.0.0.1.

mod cli;
mod cog;
mod demo;
mod faults;
mod pgstac;
mod server;
mod sign;
mod stack;
mod store;
mod util;
mod world;
