//! The embedded demo world: a synthetic Sentinel-2 L2A-like scene set that
//! tilestack generates from a recipe and serves itself on 127.0.0.1.
//!
//! A world folder holds:
//!
//! ```text
//! world.json            manifest (written last: its presence marks a complete world)
//! collection.json       STAC collection
//! items/<id>.json       STAC 1.0 items, asset hrefs relative to the item file
//! data/<id>/<band>.tif  COGs: B02 B03 B04 B08 (10 m, uint16), B11 (20 m, uint16), SCL (20 m, uint8)
//! terminals.geojson     the port-terminal polygons (WGS 84)
//! labels/ships.geojson  ground-truth ship footprints, one feature per ship and day (`datetime`),
//!                       S2 days and Sentinel-1-only days alike; `ship_id` is the same on every
//!                       day of a ship's visit (moored ships dwell 2–7 days at one place),
//!                       `arrival_day`/`departure_day` its visit (null for the ship under way)
//! collections/<id>.json the other collections: <collection>-s1 (Sentinel-1 RTC-like VV/VH),
//!                       <collection>-dem (elevation), <collection>-landcover (ESA WorldCover codes)
//! data/<id>/vv.tif ...  their COGs (items in items/ beside the S2 ones); see `sensors.rs`
//! ```
//!
//! Generating is deterministic: the same recipe gives byte-identical files.
//!
//! May import: any stage (it generates COGs, items and labels and serves
//! them). No stage imports it, except [`crate::dataset`] for a config that
//! names the demo world (`[catalog] demo = "oakland"`): such a dataset
//! generates and serves its world itself.

//! Feature `demo`. Nothing in the pipeline depends on this module: it
//! produces STAC items and COGs like a real catalog's, and serves them on
//! 127.0.0.1 like a real server ([`WorldServer`]: a STAC API and Range reads),
//! so the whole job can be run, tested and measured without the internet.

pub(crate) mod cog_writer;
pub(crate) mod recipe;
pub(crate) mod render;
pub(crate) mod sar;
pub(crate) mod sensors;
pub(crate) mod server;
pub(crate) mod world;
pub(crate) mod zarr_store;

pub use cog_writer::{
    CogOptions, CogPixels, CogWriteError, MAX_DEFLATE_LEVEL, MAX_TILE_SIZE, OverviewResampling,
    encode_cog, write_cog,
};
pub use recipe::{
    Acquisition, Granule, OAKLAND_RECIPE, Recipe, S1Def, S1Pass, SceneDef, SceneSpec, Terminal,
};
pub use server::{RequestLog, ServerOptions, ServerStats, WorldServer};
pub use world::{
    GENERATOR_VERSION, MANIFEST, World, WorldCollection, WorldManifest, WorldScene, recipe_key,
    terminals_geojson,
};
pub use zarr_store::{V2_COUNT_OFFSET, ZarrLayout};
