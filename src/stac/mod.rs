//! Catalogs: where scenes come from ([`Catalog`]), STAC API item search ([`StacClient`], [`SearchRequest`]),
//! snapshots of a search's items ([`save_snapshot`], [`load_snapshot`]:
//! ItemCollection JSON or stac-geoparquet), and the one boundary where STAC
//! items become the small [`Scene`]s the later stages read
//! ([`scenes_from_items`]).
//!
//! May import: [`crate::error`], [`crate::units`], [`crate::geo`],
//! [`crate::fetch`].

pub(crate) mod catalog;
pub(crate) mod client;
#[cfg(feature = "geoparquet")]
pub(crate) mod geoparquet;
pub(crate) mod scene;
pub(crate) mod snapshot;

pub use catalog::Catalog;
pub use client::{
    DEFAULT_SEARCH_TIMEOUT, SearchRequest, SearchResults, StacClient, normalize_datetime,
};
pub use scene::{AssetFormat, CfUse, Harmonize, Scene, SceneAsset, scenes_from_items};
pub use snapshot::{load_snapshot, save_snapshot};
