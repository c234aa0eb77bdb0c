//! One module per command. Shared helpers: the reader and the stack run
//! (`stack`), the recipe (here), the pictures (`plot`).

pub(crate) mod bench;
pub(crate) mod dataset;
pub(crate) mod demo;
pub(crate) mod info;
pub(crate) mod materialize;
pub(crate) mod plot;
pub(crate) mod read;
pub(crate) mod search;
pub(crate) mod stack;
pub(crate) mod world;

use std::path::Path;

use anyhow::Result;
use tilestack::demo::Recipe;

/// The recipe at `path`, or the embedded Oakland port one (`world`, `demo`).
fn load_recipe(path: Option<&Path>) -> Result<Recipe> {
    Ok(match path {
        Some(p) => Recipe::from_file(p)?,
        None => Recipe::oakland(),
    })
}
