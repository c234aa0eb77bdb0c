//! The model and its loss: a small UNet over one day tile (its bands plus
//! the validity mask), and a masked loss that never sees pixels without data.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

/// Two 3 × 3 convolutions, each with group normalization and ReLU.
#[derive(Module, Debug)]
pub(crate) struct Block {
    a: Conv2d,
    na: GroupNorm,
    b: Conv2d,
    nb: GroupNorm,
}

impl Block {
    pub(crate) fn new(cin: usize, cout: usize, device: &Device) -> Block {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let norm = || GroupNormConfig::new((cout / 4).clamp(1, 8), cout).init(device);
        Block {
            a: conv(cin, cout),
            na: norm(),
            b: conv(cout, cout),
            nb: norm(),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.na.forward(self.a.forward(x)));
        relu(self.nb.forward(self.b.forward(x)))
    }
}

/// A small UNet: two 2× downsamplings (receptive field ~ 40 px, 400 m: a
/// ship and the water around it), skip connections, one logit per pixel.
#[derive(Module, Debug)]
pub(crate) struct ShipNet {
    enc1: Block,
    enc2: Block,
    mid: Block,
    up2: ConvTranspose2d,
    dec2: Block,
    up1: ConvTranspose2d,
    dec1: Block,
    head: Conv2d,
}

impl ShipNet {
    pub(crate) fn new(bands: usize, w: usize, device: &Device) -> ShipNet {
        let up = |i, o| {
            ConvTranspose2dConfig::new([i, o], [2, 2])
                .with_stride([2, 2])
                .init(device)
        };
        drawn_now(ShipNet {
            enc1: Block::new(bands + 1, w, device),
            enc2: Block::new(w, 2 * w, device),
            mid: Block::new(2 * w, 4 * w, device),
            up2: up(4 * w, 2 * w),
            dec2: Block::new(4 * w, 2 * w, device),
            up1: up(2 * w, w),
            dec1: Block::new(2 * w, w, device),
            head: Conv2dConfig::new([w, 1], [1, 1]).init(device),
        })
    }

    /// `[N, C, H, W]` inputs and `[N, 1, H, W]` validity (H, W multiples
    /// of 4) → `[N, 1, H, W]` logits.
    ///
    /// Each day tile is first standardized per band over its valid pixels
    /// (haze and glint shift a whole tile's levels; the ships are local
    /// contrast), and the validity mask is an input channel of its own.
    pub(crate) fn forward(&self, x: Tensor<4>, valid: Tensor<4>) -> Tensor<4> {
        let n = valid.clone().sum_dim(2).sum_dim(3) + 1.0;
        let mean = (x.clone() * valid.clone()).sum_dim(2).sum_dim(3) / n.clone();
        let dev = (x - mean) * valid.clone();
        let var = dev.clone().powi_scalar(2).sum_dim(2).sum_dim(3) / n;
        let x = Tensor::cat(vec![dev / (var + 1e-4).sqrt(), valid], 1);
        let pool = |t: Tensor<4>| max_pool2d(t, MaxPoolOptions::new([2, 2]));
        let e1 = self.enc1.forward(x);
        let e2 = self.enc2.forward(pool(e1.clone()));
        let m = self.mid.forward(pool(e2.clone()));
        let d2 = self
            .dec2
            .forward(Tensor::cat(vec![self.up2.forward(m), e2], 1));
        let d1 = self
            .dec1
            .forward(Tensor::cat(vec![self.up1.forward(d2), e1], 1));
        // Ships are rare: start from "no ship" (p ≈ 0.12), not 0.5.
        self.head.forward(d1) - 2.0
    }
}

/// `m` with every parameter drawn now, in the order of its fields.
///
/// burn draws a parameter from the device's seeded RNG at its first use,
/// not when the module is made: two models made one after the other and
/// trained side by side would interleave their draws as their threads
/// happen to run, and a model made before another one trains would take
/// draws meant for it. Drawn here, a model's initial weights depend on the
/// seed and the order the models are made in only. The field order is the
/// order of first use in both models' forward passes, so the weights are
/// those the lazy draws gave (runs before this change reproduce).
pub(crate) fn drawn_now<M: Module>(m: M) -> M {
    struct Draw;
    impl ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    m.visit(&mut Draw);
    m
}

/// Weighted binary cross-entropy plus soft Dice, both over valid pixels only.
pub(crate) fn masked_loss(
    logits: Tensor<4>,
    y: Tensor<4>,
    valid: Tensor<4>,
    pos_weight: f32,
) -> Tensor<1> {
    // BCE with logits, stable: max(z, 0) − z·y + log(1 + e^−|z|)
    let bce = relu(logits.clone()) - logits.clone() * y.clone()
        + logits.clone().abs().neg().exp().log1p();
    let w = valid.clone() * (y.clone() * (pos_weight - 1.0) + 1.0);
    let bce = (bce * w.clone()).sum() / (w.sum() + 1e-6);
    let p = sigmoid(logits) * valid.clone();
    let yv = y * valid;
    let inter = (p.clone() * yv.clone()).sum();
    let dice = (inter * 2.0 + 1.0) / (p.sum() + yv.sum() + 1.0);
    bce - dice + 1.0
}
