//! The temporal model: one place's whole daily stack at once, so that a ship
//! is what comes and goes over a background that stays.
//!
//! **Why attention over the day axis** (rather than a ConvGRU or temporal
//! convolutions): the observed days of a place are irregular — no scene on
//! most days, opaque cloud on some, a swath edge through others — and a
//! ship dwells at a berth for a few of them. Attention takes any number of
//! days, in any spacing, and a day without data (or a pixel without data
//! on that day) is simply a key it may not attend to; a recurrent or
//! convolutional mixer would have to be fed the gaps as zeros and learn to
//! step over them. The question a day asks of the others is "which of you
//! look like me here, and which like the background" — a content-based
//! lookup, which is what attention is.
//!
//! The layers:
//! - **Inputs per day** (`2C + 2` channels at full resolution): the day's
//!   bands standardized over its valid pixels (haze and glint shift a whole
//!   tile), the same minus their per-pixel median over the place's valid
//!   days (the static background: container stacks, roofs and quays cancel,
//!   a moored ship does not unless it stays most of the month), validity,
//!   and the terminals mask; with `--with-input`, another input's bands on
//!   that day (Sentinel-1 in dB) and its validity. A day only that input
//!   observed (a radar pass on a day without an optical scene) is in the
//!   sequence too, and the loss covers every pixel some input observed, so
//!   the model learns to find ships under cloud.
//! - **A per-day encoder shared across days**: the UNet's two 2× levels.
//! - **Metadata** (the step's valid fraction, `eo_cloud_cover`, `pct_nans`,
//!   `tile_cloud_fraction`, and whether the scene declared a cloud cover)
//!   scales and shifts the day's bottleneck features (FiLM) and biases how
//!   much the other days listen to it (a cloudy day is a poor witness).
//! - **Attention over the days** at the bottleneck (40 m cells): per cell,
//!   each day attends to every day with data at that cell; the day's
//!   features, the context and their difference go to the decoder.
//! - **The terminals mask as an attention prior**: besides being an input
//!   channel, it gates the decoder's last features per channel
//!   (`sigmoid(a + b · mask)`), so the model can learn to look harder at
//!   the berths without being blind to the channel.
//! - The UNet's decoder with skip connections, one logit per pixel and day.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use chrono::NaiveDate;

use crate::data::{HostBatch, View};
use crate::model::Block;

/// Metadata values per day.
pub(crate) const META: usize = 5;

/// The metadata of a day without an optical scene (nothing valid, 100 %
/// no data, no cloud cover declared).
const NO_OPTICAL: [f32; META] = [0.0, 0.0, 1.0, 0.0, 0.0];

/// What the model is built with (the ablations switch parts off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    /// Metadata FiLM and attention bias.
    pub(crate) metadata: bool,
    /// The terminals mask as input channel and gate.
    pub(crate) mask: bool,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            metadata: true,
            mask: true,
        }
    }
}

/// The temporal ship model (see the module doc).
#[derive(Module, Debug)]
pub(crate) struct TemporalNet {
    enc1: Block,
    enc2: Block,
    mid: Block,
    film: Linear,
    q: Linear,
    k: Linear,
    v: Linear,
    key_bias: Linear,
    fuse: Block,
    up2: ConvTranspose2d,
    dec2: Block,
    up1: ConvTranspose2d,
    dec1: Block,
    gate_a: Param<Tensor<1>>,
    gate_b: Param<Tensor<1>>,
    head: Conv2d,
    #[module(skip)]
    parts: Parts,
}

/// A group of places' observed days, padded to one length, as tensors.
#[derive(Debug, Clone)]
pub(crate) struct SeqTensors {
    /// `[G·K, 2C + 2 + E, H, W]` per-day input features (the mask last).
    pub(crate) feats: Tensor<4>,
    /// `[G·K, 1, H, W]` pixels some input observed (0 on padding days):
    /// the loss's mask and the attention's keys.
    pub(crate) seen: Tensor<4>,
    /// `[G·K, 1, H, W]` targets.
    pub(crate) label: Tensor<4>,
    /// `seen` and `label` as built on the host, for the step's counts
    /// (not read back from the device).
    pub(crate) host_seen: Vec<f32>,
    pub(crate) host_label: Vec<f32>,
    /// `[G·K, 1, H, W]` the terminals mask, repeated per day.
    pub(crate) mask: Tensor<4>,
    /// `[G, K, META]` per-day metadata.
    pub(crate) meta: Tensor<3>,
    pub(crate) groups: usize,
    pub(crate) days: usize,
}

impl TemporalNet {
    /// A model of `bands` bands and `extra` planes of another input.
    pub(crate) fn new(
        bands: usize,
        extra: usize,
        w: usize,
        parts: Parts,
        device: &Device,
    ) -> TemporalNet {
        let up = |i, o| {
            ConvTranspose2dConfig::new([i, o], [2, 2])
                .with_stride([2, 2])
                .init(device)
        };
        let d = 4 * w;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        crate::model::drawn_now(TemporalNet {
            enc1: Block::new(2 * bands + 2 + extra, w, device),
            enc2: Block::new(w, 2 * w, device),
            mid: Block::new(2 * w, d, device),
            film: lin(META, 2 * d),
            q: lin(d, d),
            k: lin(d, d),
            v: lin(d, d),
            key_bias: lin(META, 1),
            fuse: Block::new(3 * d, d, device),
            up2: up(d, 2 * w),
            dec2: Block::new(4 * w, 2 * w, device),
            up1: up(2 * w, w),
            dec1: Block::new(2 * w, w, device),
            gate_a: Param::from_tensor(Tensor::<1>::full([w], 2.0, device)),
            gate_b: Param::from_tensor(Tensor::<1>::zeros([w], device)),
            head: Conv2dConfig::new([w, 1], [1, 1]).init(device),
            parts,
        })
    }

    /// Logits `[G·K, 1, H, W]` of every day of every place in `s`.
    pub(crate) fn forward(&self, s: &SeqTensors) -> Tensor<4> {
        let (g, k) = (s.groups, s.days);
        let mask = if self.parts.mask {
            s.mask.clone()
        } else {
            s.mask.clone().zeros_like()
        };
        let [n, f, h, w] = s.feats.dims();
        // the mask channel is the last input channel
        let feats = Tensor::cat(
            vec![
                s.feats.clone().slice([0..n, 0..f - 1, 0..h, 0..w]),
                mask.clone(),
            ],
            1,
        );
        let pool = |t: Tensor<4>| max_pool2d(t, MaxPoolOptions::new([2, 2]));
        let e1 = self.enc1.forward(feats);
        let e2 = self.enc2.forward(pool(e1.clone()));
        let mut m = self.mid.forward(pool(e2.clone()));
        let [_, d, h4, w4] = m.dims();
        let meta = if self.parts.metadata {
            s.meta.clone()
        } else {
            s.meta.clone().zeros_like()
        };
        if self.parts.metadata {
            let film = self.film.forward(meta.clone().reshape([n, META]));
            let gamma = film.clone().slice([0..n, 0..d]).reshape([n, d, 1, 1]);
            let beta = film.slice([0..n, d..2 * d]).reshape([n, d, 1, 1]);
            m = m.clone() * (gamma + 1.0) + beta;
        }
        // attention over the days, per bottleneck cell
        let cells = h4 * w4;
        let tokens = m
            .clone()
            .reshape([g, k, d, cells])
            .permute([0, 3, 1, 2])
            .reshape([g * cells, k, d]);
        let (q, key, v) = (
            self.q.forward(tokens.clone()),
            self.k.forward(tokens.clone()),
            self.v.forward(tokens),
        );
        let scores = q.matmul(key.swap_dims(1, 2)) / (d as f64).sqrt();
        // keys without data at the cell (no input observed it) may not be
        // attended to; min-pool to the bottleneck: a cell is valid when all
        // of it is
        let valid4 = pool(pool(s.seen.clone().neg())).neg();
        let mut bias = (valid4 - 1.0) * 1e4; // [n, 1, h4, w4]
        if self.parts.metadata {
            let kb = self.key_bias.forward(meta).reshape([n, 1, 1, 1]);
            bias = bias + kb;
        }
        let bias = bias
            .reshape([g, k, cells])
            .permute([0, 2, 1])
            .reshape([g * cells, 1, k]);
        let attn = softmax(scores + bias, 2);
        let ctx = attn
            .matmul(v)
            .reshape([g, cells, k, d])
            .permute([0, 2, 3, 1])
            .reshape([n, d, h4, w4]);
        let fused = self
            .fuse
            .forward(Tensor::cat(vec![m.clone(), ctx.clone(), m - ctx], 1));
        let d2 = self
            .dec2
            .forward(Tensor::cat(vec![self.up2.forward(fused), e2], 1));
        let mut d1 = self
            .dec1
            .forward(Tensor::cat(vec![self.up1.forward(d2), e1], 1));
        if self.parts.mask {
            let c = self.gate_a.dims()[0];
            let a = self.gate_a.val().reshape([1, c, 1, 1]);
            let b = self.gate_b.val().reshape([1, c, 1, 1]);
            d1 = d1 * sigmoid(a + b * mask);
        }
        // Ships are rare: start from "no ship".
        self.head.forward(d1) - 2.0
    }
}

/// One place's observed days, on the host.
#[derive(Debug, Clone)]
pub(crate) struct Seq {
    /// The sample id.
    pub(crate) place: String,
    /// The observed days, in order.
    pub(crate) days: Vec<NaiveDate>,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    /// `[K, C, H, W]` the batch's (normalized) inputs.
    pub(crate) x: Vec<f32>,
    /// `[K, H, W]` where the optical input (the first) has data.
    pub(crate) valid: Vec<f32>,
    /// `[K, H, W]` where an input the temporal model reads ([`Seq::view`])
    /// has data: the optical validity, the other input's where it has data
    /// (radar sees through cloud), or both. The loss, and the days the
    /// model's attention may consult, follow it; it equals `valid` for the
    /// optical input alone.
    pub(crate) seen: Vec<f32>,
    /// Per day: whether the optical input observed it (under 99 % no
    /// data). Without another input every day of a `Seq` is; with one
    /// read on its own days, a day only that input observed is in the
    /// `Seq` too.
    pub(crate) optical: Vec<bool>,
    /// Per day: whether an input the temporal model reads observed it.
    pub(crate) model: Vec<bool>,
    /// The inputs the temporal model reads.
    pub(crate) view: View,
    /// `[K, H, W]`.
    pub(crate) label: Vec<f32>,
    /// `[H, W]` the terminals mask (zeros without a mask layer).
    pub(crate) mask: Vec<f32>,
    /// Channels of `extra` per day.
    pub(crate) e: usize,
    /// `[K, E, H, W]` the other input's features (see [`extra_features`]).
    pub(crate) extra: Vec<f32>,
    /// Per day: valid fraction, eo_cloud_cover / 100, pct_nans / 100,
    /// tile_cloud_fraction, and 1 when the scene declared a cloud cover.
    pub(crate) meta: Vec<[f32; META]>,
}

impl Seq {
    pub(crate) fn len(&self) -> usize {
        self.days.len()
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// Day `i`'s validity, `[H, W]`.
    pub(crate) fn valid_of(&self, i: usize) -> &[f32] {
        &self.valid[i * self.plane()..(i + 1) * self.plane()]
    }

    /// Day `i`'s pixels some input observed, `[H, W]` (see [`Seq::seen`]).
    pub(crate) fn seen_of(&self, i: usize) -> &[f32] {
        &self.seen[i * self.plane()..(i + 1) * self.plane()]
    }

    /// Day `i`'s validity of `--with-input`'s input (the last plane of
    /// its features), `[H, W]`; `None` without one.
    pub(crate) fn other_valid_of(&self, i: usize) -> Option<&[f32]> {
        let p = self.plane();
        (self.e > 0).then(|| &self.extra[((i + 1) * self.e - 1) * p..(i + 1) * self.e * p])
    }

    /// Day `i`'s label, `[H, W]`.
    pub(crate) fn label_of(&self, i: usize) -> &[f32] {
        &self.label[i * self.plane()..(i + 1) * self.plane()]
    }

    /// Day `i`'s band `b`, `[H, W]`.
    pub(crate) fn band_of(&self, i: usize, b: usize) -> &[f32] {
        let p = self.plane();
        &self.x[(i * self.c + b) * p..(i * self.c + b + 1) * p]
    }

    /// The same place with only the days `keep` (indexes, in order).
    pub(crate) fn subset(&self, keep: &[usize]) -> Seq {
        let p = self.plane();
        let mut s = Seq {
            days: keep.iter().map(|&i| self.days[i]).collect(),
            x: Vec::with_capacity(keep.len() * self.c * p),
            valid: Vec::with_capacity(keep.len() * p),
            seen: Vec::with_capacity(keep.len() * p),
            optical: keep.iter().map(|&i| self.optical[i]).collect(),
            model: keep.iter().map(|&i| self.model[i]).collect(),
            label: Vec::with_capacity(keep.len() * p),
            meta: keep.iter().map(|&i| self.meta[i]).collect(),
            ..self.clone_empty()
        };
        for &i in keep {
            s.extra
                .extend_from_slice(&self.extra[i * self.e * p..(i + 1) * self.e * p]);
            s.x.extend_from_slice(&self.x[i * self.c * p..(i + 1) * self.c * p]);
            s.valid.extend_from_slice(self.valid_of(i));
            s.seen.extend_from_slice(self.seen_of(i));
            s.label.extend_from_slice(self.label_of(i));
        }
        s
    }

    /// The days the temporal model reads (all of them, unless the dataset
    /// has another input it does not read, or it reads only that one),
    /// with their indexes here.
    pub(crate) fn model_view(&self) -> (Seq, Vec<usize>) {
        let keep: Vec<usize> = (0..self.len()).filter(|&i| self.model[i]).collect();
        let s = if keep.len() == self.len() {
            self.clone()
        } else {
            self.subset(&keep)
        };
        (s, keep)
    }

    /// Day `i`'s pixels some input read observed — the optical input's, or
    /// the other input's on a day it observed — `[H, W]`: where every
    /// `--inputs` choice is scored alike.
    pub(crate) fn any_of(&self, i: usize) -> Vec<f32> {
        let v = self.valid_of(i);
        match self.other_valid_of(i) {
            Some(o) => v.iter().zip(o).map(|(&a, &b)| a.max(b)).collect(),
            None => v.to_vec(),
        }
    }

    fn clone_empty(&self) -> Seq {
        Seq {
            place: self.place.clone(),
            days: Vec::new(),
            c: self.c,
            h: self.h,
            w: self.w,
            x: Vec::new(),
            valid: Vec::new(),
            seen: Vec::new(),
            optical: Vec::new(),
            model: Vec::new(),
            view: self.view,
            label: Vec::new(),
            mask: self.mask.clone(),
            e: self.e,
            extra: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// `[K, C, H, W]` bands standardized per day and band over the day's
    /// valid pixels (0 where not valid).
    pub(crate) fn standardized(&self) -> Vec<f32> {
        let p = self.plane();
        let mut out = vec![0.0f32; self.x.len()];
        for i in 0..self.len() {
            let v = self.valid_of(i);
            for b in 0..self.c {
                let x = self.band_of(i, b);
                let (mut n, mut s) = (0.0f64, 0.0f64);
                for q in 0..p {
                    if v[q] >= 0.5 {
                        n += 1.0;
                        s += x[q] as f64;
                    }
                }
                let mean = s / n.max(1.0);
                let mut ss = 0.0f64;
                for q in 0..p {
                    if v[q] >= 0.5 {
                        ss += (x[q] as f64 - mean).powi(2);
                    }
                }
                let sd = (ss / n.max(1.0) + 1e-4).sqrt();
                let o = &mut out[(i * self.c + b) * p..(i * self.c + b + 1) * p];
                for q in 0..p {
                    if v[q] >= 0.5 {
                        o[q] = ((x[q] as f64 - mean) / sd) as f32;
                    }
                }
            }
        }
        out
    }
}

/// Per pixel and band, the median of `values` (`[K, C, H, W]`) over the days
/// valid there (`valid`, `[K, H, W]`); 0 where no day is.
pub(crate) fn temporal_median(values: &[f32], valid: &[f32], k: usize, c: usize) -> Vec<f32> {
    let p = valid.len() / k.max(1);
    let mut out = vec![0.0f32; c * p];
    let mut buf = Vec::with_capacity(k);
    for b in 0..c {
        for q in 0..p {
            buf.clear();
            for i in 0..k {
                if valid[i * p + q] >= 0.5 {
                    buf.push(values[(i * c + b) * p + q]);
                }
            }
            out[b * p + q] = median(&mut buf);
        }
    }
    out
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub(crate) fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The places of a batch (rows kept as `keep` says) with the days `pick`
/// takes that have data (under 99 % no data).
pub(crate) fn sequences(
    hb: &HostBatch,
    keep: impl Fn(usize) -> bool,
    pick: impl Fn(NaiveDate) -> bool,
) -> Vec<Seq> {
    let [_, t, c, h, w] = hb.shape;
    let p = h * w;
    let mut out = Vec::new();
    for row in 0..hb.ids.len() {
        if !keep(row) {
            continue;
        }
        let mut s = Seq {
            place: hb.ids[row].clone(),
            days: Vec::new(),
            c,
            h,
            w,
            x: Vec::new(),
            valid: Vec::new(),
            seen: Vec::new(),
            optical: Vec::new(),
            model: Vec::new(),
            view: hb.view,
            label: Vec::new(),
            mask: hb
                .mask
                .as_ref()
                .map_or_else(|| vec![0.0; p], |m| m[row * p..(row + 1) * p].to_vec()),
            e: hb.extra.as_ref().map_or(0, |x| x.2 + 1),
            extra: Vec::new(),
            meta: Vec::new(),
        };
        for (ti, &day) in hb.days[row].iter().enumerate().take(t) {
            let f = row * t + ti;
            let pct = hb.pct_nans[f];
            let optical = !pct.is_nan() && pct < 99.0;
            // the other input's validity this day, when it observed it
            let own_days = hb.extra.as_ref().filter(|_| hb.extra_own_days);
            let other = own_days.and_then(|(_, valid, _)| {
                let v = &valid[f * p..(f + 1) * p];
                (v.iter().filter(|&&x| x >= 0.5).count() * 100 >= p).then_some(v)
            });
            if !pick(day) || !(optical || other.is_some()) {
                continue;
            }
            s.days.push(day);
            s.optical.push(optical);
            s.x.extend_from_slice(&hb.inputs[f * c * p..(f + 1) * c * p]);
            let v = &hb.valid[f * p..(f + 1) * p];
            s.valid.extend_from_slice(v);
            // what the model reads of this day
            let read = hb.extra.as_ref().filter(|_| hb.view.other);
            let o = read.map(|(_, valid, _)| &valid[f * p..(f + 1) * p]);
            match (hb.view.optical, o) {
                (true, Some(o)) => s.seen.extend(v.iter().zip(o).map(|(&a, &b)| a.max(b))),
                (true, None) => s.seen.extend_from_slice(v),
                (false, Some(o)) => s.seen.extend_from_slice(o),
                (false, None) => s.seen.extend(std::iter::repeat_n(0.0, p)),
            }
            s.model.push(
                (hb.view.optical && optical)
                    || (hb.view.other && (other.is_some() || !hb.extra_own_days)),
            );
            s.label.extend_from_slice(&hb.label[f * p..(f + 1) * p]);
            if let Some((values, valid, e)) = &hb.extra {
                s.extra.extend(extra_features(
                    &values[f * e * p..(f + 1) * e * p],
                    &valid[f * p..(f + 1) * p],
                    *e,
                ));
            }
            let eo = hb.eo_cloud_cover[f];
            let tcf = hb.tile_cloud_fraction[f];
            let nz = |v: f32| if v.is_finite() { v } else { 0.0 };
            let pct = if pct.is_finite() { pct } else { 100.0 };
            s.meta.push([
                1.0 - pct / 100.0,
                nz(eo) / 100.0,
                pct / 100.0,
                nz(tcf),
                f32::from(eo.is_finite()),
            ]);
        }
        if !s.days.is_empty() {
            out.push(s);
        }
    }
    out
}

/// Another input's step as model features: each band in dB
/// (`10 log10`, backscatter's unit), standardized over the step's valid
/// pixels, 0 where not valid; then the validity. `E + 1` planes.
pub(crate) fn extra_features(values: &[f32], valid: &[f32], e: usize) -> Vec<f32> {
    let p = valid.len();
    let mut out = vec![0.0f32; (e + 1) * p];
    for b in 0..e {
        let db: Vec<f32> = values[b * p..(b + 1) * p]
            .iter()
            .map(|&v| 10.0 * v.max(1e-6).log10())
            .collect();
        let ok = |q: usize| valid[q] >= 0.5 && values[b * p + q].is_finite();
        let n = (0..p).filter(|&q| ok(q)).count().max(1) as f32;
        let mean = (0..p).filter(|&q| ok(q)).map(|q| db[q]).sum::<f32>() / n;
        let var = (0..p)
            .filter(|&q| ok(q))
            .map(|q| (db[q] - mean).powi(2))
            .sum::<f32>()
            / n;
        let sd = (var + 1e-4).sqrt();
        for q in 0..p {
            if ok(q) {
                out[b * p + q] = (db[q] - mean) / sd;
            }
        }
    }
    out[e * p..].copy_from_slice(valid);
    out
}

/// The tensors of a group of places, padded with empty days to the longest.
pub(crate) fn tensors(group: &[&Seq], device: &Device) -> SeqTensors {
    let g = group.len();
    let k = group.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let (c, e, h, w, view) = group.first().map_or(
        (
            1,
            0,
            1,
            1,
            View {
                optical: true,
                other: false,
            },
        ),
        |s| (s.c, s.e, s.h, s.w, s.view),
    );
    // the other input's planes, when the model reads it
    let e = if view.other { e } else { 0 };
    let p = h * w;
    let f = 2 * c + 2 + e;
    let mut feats = vec![0.0f32; g * k * f * p];
    let mut seen = vec![0.0f32; g * k * p];
    let mut label = vec![0.0f32; g * k * p];
    let mut mask = vec![0.0f32; g * k * p];
    let mut meta = vec![0.0f32; g * k * META];
    for (gi, s) in group.iter().enumerate() {
        let z = s.standardized();
        let med = temporal_median(&z, &s.valid, s.len(), c);
        for i in 0..k {
            let n = gi * k + i;
            mask[n * p..(n + 1) * p].copy_from_slice(&s.mask);
            if i >= s.len() {
                continue; // padding: no data, no label
            }
            let v = s.valid_of(i);
            seen[n * p..(n + 1) * p].copy_from_slice(s.seen_of(i));
            label[n * p..(n + 1) * p].copy_from_slice(s.label_of(i));
            let out = &mut feats[n * f * p..(n + 1) * f * p];
            out[(2 * c + 1) * p..(2 * c + 1 + e) * p]
                .copy_from_slice(&s.extra[i * s.e * p..(i * s.e + e) * p]);
            out[(2 * c + 1 + e) * p..(2 * c + 2 + e) * p].copy_from_slice(&s.mask);
            if !view.optical {
                // the optical planes stay 0, its metadata as on a day
                // without an optical scene
                meta[n * META..(n + 1) * META].copy_from_slice(&NO_OPTICAL);
                continue;
            }
            meta[n * META..(n + 1) * META].copy_from_slice(&s.meta[i]);
            for b in 0..c {
                let zb = &z[(i * c + b) * p..(i * c + b + 1) * p];
                out[b * p..(b + 1) * p].copy_from_slice(zb);
                let diff = &mut out[(c + b) * p..(c + b + 1) * p];
                for q in 0..p {
                    diff[q] = if v[q] >= 0.5 {
                        zb[q] - med[b * p + q]
                    } else {
                        0.0
                    };
                }
            }
            out[2 * c * p..(2 * c + 1) * p].copy_from_slice(v);
        }
    }
    let t4 = |v: Vec<f32>, ch: usize| {
        Tensor::<4>::from_data(TensorData::new(v, [g * k, ch, h, w]), device)
    };
    SeqTensors {
        feats: t4(feats, f),
        seen: t4(seen.clone(), 1),
        label: t4(label.clone(), 1),
        host_seen: seen,
        host_label: label,
        mask: t4(mask, 1),
        meta: Tensor::<3>::from_data(TensorData::new(meta, [g, k, META]), device),
        groups: g,
        days: k,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_median_of_each_pixel_is_over_its_valid_days_only() {
        // 3 days, 1 band, 2 pixels: pixel 0 valid on all days, pixel 1 on
        // days 0 and 2 (day 1's value there must not count)
        let values = [1.0, 10.0, 5.0, 99.0, 3.0, 20.0];
        let valid = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0];
        assert_eq!(temporal_median(&values, &valid, 3, 1), vec![3.0, 15.0]);
        assert_eq!(median(&mut []), 0.0);
        // no valid day: 0
        assert_eq!(temporal_median(&[4.0], &[0.0], 1, 1), vec![0.0]);
    }

    /// One place, 2×2 px, three days: optical on day 0 (all valid), no
    /// optical scene on day 1, the optical tile fully cloudy on day 2
    /// (pct_nans 100); the other input observes day 1 fully, day 2's left
    /// column, and nothing on day 0.
    pub(crate) fn batch_with_other_input() -> HostBatch {
        let day = |d| NaiveDate::from_ymd_opt(2019, 8, d).expect("a day");
        let p = 4;
        HostBatch {
            shape: [1, 3, 1, 2, 2],
            inputs: vec![0.5; 3 * p],
            valid: [vec![1.0; p], vec![0.0; p], vec![0.0; p]].concat(),
            label: vec![0.0; 3 * p],
            mask: Some(vec![1.0, 0.0, 1.0, 0.0]),
            eo_cloud_cover: vec![10.0, f32::NAN, 100.0],
            pct_nans: vec![0.0, f32::NAN, 100.0],
            tile_cloud_fraction: vec![0.0, f32::NAN, 1.0],
            days: vec![vec![day(1), day(2), day(3)]],
            ids: vec!["a".into()],
            status: vec![tilestack::loader::SampleStatus::Ok],
            extra: Some((
                vec![1.0; 3 * p],
                [vec![0.0; p], vec![1.0; p], vec![1.0, 0.0, 1.0, 0.0]].concat(),
                1,
            )),
            extra_own_days: true,
            view: View {
                optical: true,
                other: true,
            },
        }
    }

    #[test]
    fn days_only_another_input_observed_join_the_sequence_and_its_loss() {
        let hb = batch_with_other_input();
        let s = &sequences(&hb, |_| true, |_| true)[0];
        assert_eq!(
            s.len(),
            3,
            "the optical day and the two the other input observed"
        );
        assert_eq!(s.optical, [true, false, false]);
        assert_eq!(s.seen_of(0), &[1.0; 4], "day 0: the optical pixels");
        assert_eq!(s.seen_of(1), &[1.0; 4], "day 1: the other input's");
        assert_eq!(s.seen_of(2), &[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(s.valid_of(1), &[0.0; 4], "no optical pixel on day 1");
        assert!(
            s.meta.iter().flatten().all(|m| m.is_finite()),
            "{:?}",
            s.meta
        );
        assert_eq!(s.other_valid_of(2), Some(&[1.0, 0.0, 1.0, 0.0][..]));
        // the berths (mask column 0): day 0 the optical input sees them;
        // day 1 it has no scene and the radar sees the tile; day 2 the
        // radar sees only half of the tile (still half: counted)
        let blind: Vec<bool> = (0..3)
            .map(|i| crate::metrics::optical_blind(s, i))
            .collect();
        assert_eq!(blind, [false, true, true]);
        // the tensors' loss mask is the seen pixels, the validity channel
        // (after the C bands and their C differences) the optical one
        let t = tensors(&[s], &crate::args::device("cpu").expect("the CPU device"));
        let seen = t.seen.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(seen, [[1.0; 4], [1.0; 4], [1.0, 0.0, 1.0, 0.0]].concat());
        let feats = t.feats.into_data().try_to_vec::<f32>().expect("f32");
        let f = feats.len() / (3 * 4);
        let valid: Vec<f32> = (0..3)
            .flat_map(|i| feats[(i * f + 2) * 4..(i * f + 3) * 4].to_vec())
            .collect();
        assert_eq!(valid, [[1.0; 4], [0.0; 4], [0.0; 4]].concat());

        // read by `nearest` (its steps may hold another day's scene), or
        // without the other input: only the optical day, seen = valid
        let nearest = HostBatch {
            extra_own_days: false,
            ..hb.clone()
        };
        for hb in [nearest, HostBatch { extra: None, ..hb }] {
            let s = &sequences(&hb, |_| true, |_| true)[0];
            assert_eq!((s.len(), s.optical.clone()), (1, vec![true]));
            assert_eq!(s.seen, s.valid);
        }
    }

    /// `--inputs s2` and `--inputs s1` over the batch above: the same
    /// days in the `Seq` (what some input observed), the model reading
    /// only its own days and pixels.
    #[test]
    fn each_inputs_choice_reads_its_own_days_and_pixels() {
        let dev = crate::args::device("cpu").expect("the CPU device");
        let only = |optical, other| HostBatch {
            view: View { optical, other },
            ..batch_with_other_input()
        };
        // the optical input alone: the other input is read for the shared
        // pixels, not fed to the model
        let s = &sequences(&only(true, false), |_| true, |_| true)[0];
        assert_eq!((s.len(), s.model.clone()), (3, vec![true, false, false]));
        assert_eq!(s.seen, s.valid, "the model reads the optical pixels");
        assert_eq!(s.any_of(1), [1.0; 4], "day 1: the radar's pixels");
        let (m, idx) = s.model_view();
        assert_eq!((m.len(), idx), (1, vec![0]));
        let t = tensors(&[&m], &dev);
        assert_eq!(
            t.feats.dims(),
            [1, 2 + 2, 2, 2],
            "bands, differences, validity, mask"
        );

        // the other input alone: its days and pixels, no optical plane
        let s = &sequences(&only(false, true), |_| true, |_| true)[0];
        assert_eq!(s.model, [false, true, true]);
        assert_eq!(
            s.seen,
            [[0.0; 4], [1.0; 4], [1.0, 0.0, 1.0, 0.0]].concat(),
            "the radar's validity"
        );
        let (m, idx) = s.model_view();
        assert_eq!(idx, [1, 2]);
        let t = tensors(&[&m], &dev);
        assert_eq!(
            t.feats.dims(),
            [2, 2 + 2 + 2, 2, 2],
            "with the radar's two planes"
        );
        let feats = t.feats.into_data().try_to_vec::<f32>().expect("f32");
        for day in 0..2 {
            let f = &feats[day * 6 * 4..(day + 1) * 6 * 4];
            assert!(
                f[..3 * 4].iter().all(|&x| x == 0.0),
                "no optical plane: {f:?}"
            );
            assert_eq!(&f[5 * 4..], &[1.0, 0.0, 1.0, 0.0], "the mask, last");
        }
        assert_eq!(&feats[4 * 4..5 * 4], &[1.0; 4], "day 1's radar validity");
        let meta = t.meta.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(meta, [NO_OPTICAL, NO_OPTICAL].concat());
    }

    #[test]
    fn extra_input_features_are_standardized_decibels_with_validity() {
        let values = [1.0, 10.0, 100.0, 0.0];
        let valid = [1.0, 1.0, 1.0, 0.0];
        let f = extra_features(&values, &valid, 1);
        // 0, 10, 20 dB: mean 10, sd sqrt(200/3)
        let sd = (200.0f32 / 3.0 + 1e-4).sqrt();
        for (got, want) in f[..3].iter().zip([-10.0 / sd, 0.0, 10.0 / sd]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert_eq!(f[3], 0.0, "no data: 0");
        assert_eq!(&f[4..], &valid);
    }
}
