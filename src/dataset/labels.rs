//! Label layers as a dataset holds them: GeoJSON rasterized per sample and
//! step (0/1), or a categorical raster (`[[labels]] raster = …`) read per
//! sample as an input is — nearest neighbour, never interpolated — and
//! turned into class indexes by its [`ClassMap`].
//!
//! Real products' conventions: ESA WorldCover's `map` holds codes 10–100
//! (`classes = [10, 20, …]` makes them 0, 1, …), Dynamic World's `label`
//! holds 0–8 (used as they are), io-lulc's `data` 0–11; no data (the
//! asset's nodata, a pixel no scene covers) is `ignore_index`, as the
//! losses of training frameworks expect.

use crate::dataset::config::{InputConfig, LayerConfig};
use crate::dataset::input_search::OpenInput;
use crate::dataset::inputs::InputStack;
use crate::geo::rasterize::Mask;

/// One label layer of an opened dataset.
pub(crate) enum LabelLayer {
    /// GeoJSON: 1 inside a feature (of the step's day, when dated), 0 outside.
    Vector(Mask),
    /// A categorical raster, read as an input.
    Raster(Box<RasterLabel>),
}

/// A raster label layer, opened: the input it is read as, its scenes and
/// each sample's, and its classes.
pub(crate) struct RasterLabel {
    pub(crate) input: InputConfig,
    pub(crate) open: OpenInput,
    pub(crate) classes: ClassMap,
}

/// A product code → class index map (see
/// [`LayerConfig`](crate::dataset::LayerConfig)): `classes` (code → its
/// position), `remap` (code → the value given), or neither (an integer code
/// 0–255 is its own class); anything else, and no data, is the ignore index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassMap {
    /// `(code, class)` sorted by code; `None`: codes are classes.
    map: Option<Vec<(f64, u8)>>,
    ignore: u8,
}

impl ClassMap {
    /// The map a checked layer config gives (its `classes` hold at most 255
    /// codes, its `remap` keys are numbers).
    pub(crate) fn of(layer: &LayerConfig) -> ClassMap {
        let mut map: Option<Vec<(f64, u8)>> = match (&layer.classes, &layer.remap) {
            (Some(codes), _) => Some(
                codes
                    .iter()
                    .zip(0u8..)
                    .map(|(&code, class)| (f64::from(code), class))
                    .collect(),
            ),
            (None, Some(remap)) => Some(
                remap
                    .iter()
                    .filter_map(|(code, &class)| code.parse::<f64>().ok().map(|c| (c, class)))
                    .collect(),
            ),
            (None, None) => None,
        };
        if let Some(m) = &mut map {
            m.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        ClassMap {
            map,
            ignore: layer.ignore_index.unwrap_or(255),
        }
    }

    /// The class of one pixel's value (NaN: no data).
    pub(crate) fn class(&self, v: f32) -> u8 {
        if v.is_nan() {
            return self.ignore;
        }
        match &self.map {
            Some(m) => m
                .binary_search_by(|(code, _)| code.total_cmp(&f64::from(v)))
                .map_or(self.ignore, |i| m[i].1),
            None if (0.0..=255.0).contains(&v) && v.fract() == 0.0 => v as u8,
            None => self.ignore,
        }
    }

    /// The layer of a loaded label input on the sample's `t` steps: `[T][H·W]`
    /// class indexes (a static map labels every step).
    pub(crate) fn layer(&self, input: &InputStack, t: usize) -> Vec<Vec<u8>> {
        let (steps, _, h, w) = input.stack.data.dim();
        let maps: Vec<Vec<u8>> = (0..steps)
            .map(|s| {
                input
                    .stack
                    .data
                    .index_axis(ndarray::Axis(0), s)
                    .index_axis(ndarray::Axis(0), 0)
                    .iter()
                    .map(|&v| self.class(v))
                    .collect()
            })
            .collect();
        match maps.as_slice() {
            [one] => vec![one.clone(); t],
            _ if maps.len() == t => maps,
            // never: a label input has one step or the sample's
            _ => vec![vec![self.ignore; h * w]; t],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(toml_text: &str) -> LayerConfig {
        toml::from_str(&format!(
            "name = \"l\"\nraster = {{ href = \"x.tif\", band = \"map\" }}\n{toml_text}"
        ))
        .expect("a layer")
    }

    #[test]
    fn codes_become_classes_by_position_remap_or_themselves() {
        let m = ClassMap::of(&layer("classes = [80, 50, 10]"));
        assert_eq!(
            [80.0, 50.0, 10.0, 30.0, f32::NAN].map(|v| m.class(v)),
            [0, 1, 2, 255, 255]
        );
        let m = ClassMap::of(&layer("remap = { 1 = 1, 2 = 0, 3 = 0 }\nignore_index = 9"));
        assert_eq!(
            [1.0, 2.0, 3.0, 4.0, f32::NAN].map(|v| m.class(v)),
            [1, 0, 0, 9, 9]
        );
        let m = ClassMap::of(&layer(""));
        assert_eq!(
            [0.0, 8.0, 255.0, 256.0, -1.0, 2.5].map(|v| m.class(v)),
            [0, 8, 255, 255, 255, 255]
        );
    }
}
