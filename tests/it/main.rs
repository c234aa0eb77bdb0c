//! tilestack's integration tests: one binary (see STYLE.md), real servers on 127.0.0.1.

mod cli;
mod server;
mod util;
mod world;
