//! The command line (`--help` lists it) and the burn device `--device` names.
//!
//! Every option has a default, so a bare `cargo run --example ship_detection`
//! trains on the embedded Oakland demo world.

use std::path::PathBuf;

use burn::tensor::Device;
use chrono::NaiveDate;
use clap::{CommandFactory, Parser};

use crate::Res;

/// The dataset config a bare run trains on.
const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/oakland-ships.toml");

/// ship_detection: train a temporal ship model (or the per-day UNet) on daily
/// tile stacks, evaluate ships and arrivals/departures on held-out days
// `args_override_self`: a flag given twice keeps its last value.
#[derive(Parser, Debug, Clone)]
#[command(name = "ship_detection", args_override_self = true)]
pub(crate) struct Opts {
    /// dataset config (default datasets/oakland-ships.toml)
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG, hide_default_value = true)]
    pub(crate) config: PathBuf,
    /// train from shards written by `tilestack materialize`
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) shards: Option<String>,
    /// load a saved model and evaluate it on the held-out days only
    #[arg(long, value_name = "MODEL")]
    pub(crate) eval: Option<PathBuf>,
    /// load a saved per-day UNet (`unet.bpk` of an earlier run) as the
    /// baseline instead of training one
    #[arg(long, value_name = "MODEL")]
    pub(crate) eval_unet: Option<PathBuf>,
    /// cut the models' logits at 0 instead of the threshold with the best
    /// ship F1 on the training days
    #[arg(long)]
    pub(crate) no_calibration: bool,
    /// predicted ships smaller than this many pixels are noise, not ships
    /// (every detector alike)
    #[arg(long, value_name = "N", default_value_t = crate::metrics::MIN_SHIP_PX)]
    pub(crate) min_ship_px: usize,
    /// outputs: model.bpk, metrics.json, heldout.png
    #[arg(long, value_name = "DIR", default_value = "ship-detection-out")]
    pub(crate) out: PathBuf,
    /// label layer (default: the config's first)
    #[arg(long, value_name = "NAME")]
    pub(crate) label: Option<String>,
    /// first held-out day, YYYY-MM-DD (default: 60 % into the time range)
    #[arg(long, value_name = "DAY", value_parser = day)]
    pub(crate) holdout_from: Option<NaiveDate>,
    /// the model trained: the temporal model over each place's whole daily
    /// stack, or the per-day UNet
    #[arg(long, value_name = "temporal|unet", default_value = "temporal", value_parser = ["temporal", "unet"])]
    pub(crate) model: String,
    /// training epochs
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) epochs: usize,
    /// with the temporal model: also train the per-day UNet for N epochs as
    /// a baseline in the same run (0: no UNet baseline)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) unet_epochs: usize,
    /// train and score the per-day UNet baseline, and open the unseen
    /// world, one after the other on both cores, instead of each beside the
    /// rest on a core of its own (the same work, slower on a CPU)
    #[arg(long)]
    pub(crate) sequential: bool,
    /// ablation: the temporal model without its metadata inputs
    #[arg(long)]
    pub(crate) no_metadata: bool,
    /// ablation: the temporal model without the terminals mask (input
    /// channel and attention gate)
    #[arg(long)]
    pub(crate) no_mask_attention: bool,
    /// the temporal model also reads this input of the dataset (e.g. `s1`
    /// of datasets/oakland-ships-s1.toml: Sentinel-1 VV/VH, in dB) on each
    /// day it has data
    #[arg(long, value_name = "NAME", conflicts_with = "inputs")]
    pub(crate) with_input: Option<String>,
    /// what the temporal model reads: `s2` (the dataset's first input, the
    /// default), another input by name (`s1`: Sentinel-1 alone) or both
    /// (`s2,s1`, as `--with-input s1`). With a dataset that has an input
    /// read on its own days, every choice is also scored on the same
    /// held-out days and pixels (those some input observed)
    #[arg(long, value_name = "s2|s1|s2,s1")]
    pub(crate) inputs: Option<String>,
    /// places per optimizer step of the temporal model (each with all its
    /// observed days)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) places_per_step: usize,
    /// after training, also evaluate the model and the baselines on the
    /// held-out days of another dataset config (another world)
    #[arg(long, value_name = "FILE")]
    pub(crate) eval_world: Option<PathBuf>,
    /// Adam learning rate at the start (cosine decay to 5 % of it)
    #[arg(long, value_name = "X", default_value_t = 2e-3)]
    pub(crate) lr: f64,
    /// first-level channels
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) width: usize,
    /// day tiles per optimizer step
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub(crate) micro_batch: usize,
    /// train on random N px crops of each sample (default: whole tiles);
    /// evaluation always sees whole tiles
    #[arg(long, value_name = "N")]
    pub(crate) crop: Option<usize>,
    /// BCE weight of ship pixels
    #[arg(long, value_name = "X", default_value_t = 8.0)]
    pub(crate) pos_weight: f32,
    /// optimizer steps per epoch at most (shortened runs)
    #[arg(long, value_name = "N")]
    pub(crate) max_steps: Option<usize>,
    /// burn backend (cuda/wgpu need the cargo feature)
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = default_device())]
    pub(crate) device: String,
    /// model initialisation and step order
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub(crate) seed: u64,
    /// only the final line
    #[arg(long)]
    pub(crate) quiet: bool,
    /// leave glibc's mmap and trim thresholds as they are (the example
    /// raises them: burn's CPU backend frees and reallocates tensors of
    /// megabytes every step; see `keep_freed_memory` in main.rs)
    #[arg(long)]
    pub(crate) keep_glibc_defaults: bool,
}

impl Opts {
    /// This process's options. On a bad command line, prints clap's error
    /// and exits with status 2; `--help` prints the help and exits with 0.
    pub(crate) fn from_args() -> Opts {
        Opts::parse().checked().unwrap_or_else(|e| e.exit())
    }

    /// `--crop 0` is whole tiles; `--width` and `--micro-batch` are > 0.
    fn checked(mut self) -> Result<Opts, clap::Error> {
        self.crop = self.crop.filter(|&n| n > 0);
        if self.width == 0 || self.micro_batch == 0 || self.places_per_step == 0 {
            return Err(Opts::command().error(
                clap::error::ErrorKind::ValueValidation,
                "--width, --micro-batch and --places-per-step must be > 0",
            ));
        }
        self.model_inputs()
            .map_err(|e| Opts::command().error(clap::error::ErrorKind::ValueValidation, e))?;
        Ok(self)
    }

    /// What the temporal model reads: whether the optical input (the
    /// dataset's first, `s2` in `--inputs`) and which other input.
    pub(crate) fn model_inputs(&self) -> Result<ModelInputs, String> {
        let Some(list) = &self.inputs else {
            return Ok(ModelInputs {
                optical: true,
                other: self.with_input.clone(),
            });
        };
        let mut m = ModelInputs {
            optical: false,
            other: None,
        };
        for name in list.split(',').map(str::trim) {
            match name {
                "s2" | "optical" if !m.optical => m.optical = true,
                "" => return Err(format!("--inputs {list:?}: an empty name")),
                _ if m.other.is_none() && name != "s2" && name != "optical" => {
                    m.other = Some(name.to_string())
                }
                _ => {
                    return Err(format!(
                        "--inputs {list:?}: at most the optical input (s2) and one other, each once"
                    ));
                }
            }
        }
        Ok(m)
    }
}

/// The inputs the temporal model reads (see `--inputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelInputs {
    /// The dataset's first input (the optical bands, their validity and
    /// metadata).
    pub(crate) optical: bool,
    /// Another input of the dataset, by name.
    pub(crate) other: Option<String>,
}

/// The defaults of a bare command line.
impl Default for Opts {
    fn default() -> Self {
        Opts::parse_from(["ship_detection"])
    }
}

/// `--holdout-from`: exactly `YYYY-MM-DD`.
fn day(s: &str) -> Result<NaiveDate, chrono::ParseError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
}

fn default_device() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "cpu"
    }
}

/// The burn device `--device` names.
pub(crate) fn device(name: &str) -> Res<Device> {
    Ok(match name {
        "cpu" | "flex" => Device::flex(),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        other => {
            return Err(format!(
                "--device {other:?}: this build has cpu{}{} (cargo features cuda, wgpu)",
                if cfg!(feature = "cuda") { ", cuda" } else { "" },
                if cfg!(feature = "wgpu") { ", wgpu" } else { "" },
            )
            .into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Opts, clap::Error> {
        Opts::try_parse_from(std::iter::once("ship_detection").chain(args.iter().copied()))?
            .checked()
    }

    /// The defaults and rules of the hand-written parser clap replaced.
    #[test]
    fn the_command_line_keeps_its_flags_and_defaults() {
        Opts::command().debug_assert();
        let o = parse(&[]).expect("a bare command line");
        assert_eq!(o.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(o.out, PathBuf::from("ship-detection-out"));
        assert_eq!((o.epochs, o.width, o.micro_batch, o.seed), (16, 16, 8, 7));
        assert_eq!(
            (o.lr.to_bits(), o.pos_weight.to_bits()),
            (2e-3f64.to_bits(), 8f32.to_bits())
        );
        assert_eq!(o.device, default_device());
        assert!(o.shards.is_none() && o.eval.is_none() && o.label.is_none());
        assert!(o.holdout_from.is_none() && o.crop.is_none() && o.max_steps.is_none());
        assert!(!o.quiet && !o.keep_glibc_defaults && !o.sequential);
        assert_eq!(
            (o.model.as_str(), o.unet_epochs, o.places_per_step),
            ("temporal", 0, 1)
        );
        assert!(!o.no_metadata && !o.no_mask_attention);
        assert!(o.with_input.is_none() && o.eval_world.is_none() && o.inputs.is_none());
        let only = |o: &Opts| o.model_inputs().expect("inputs");
        assert_eq!(
            only(&o),
            ModelInputs {
                optical: true,
                other: None
            }
        );
        assert!(o.eval_unet.is_none() && !o.no_calibration);
        assert_eq!(o.min_ship_px, crate::metrics::MIN_SHIP_PX);

        let o = parse(&[
            "--config",
            "c.toml",
            "--shards",
            "s3://b/shards",
            "--eval",
            "m.bpk",
            "--out",
            "o",
            "--label",
            "ships",
            "--holdout-from",
            "2019-08-20",
            "--epochs",
            "3",
            "--epochs",
            "5",
            "--lr",
            "0.01",
            "--width",
            "4",
            "--micro-batch",
            "2",
            "--crop",
            "32",
            "--pos-weight",
            "2.5",
            "--max-steps",
            "6",
            "--device",
            "cpu",
            "--seed",
            "9",
            "--quiet",
            "--model",
            "unet",
            "--unet-epochs",
            "3",
            "--no-metadata",
            "--no-mask-attention",
            "--places-per-step",
            "3",
            "--with-input",
            "s1",
            "--eval-world",
            "w.toml",
            "--eval-unet",
            "u.bpk",
            "--no-calibration",
            "--min-ship-px",
            "3",
            "--keep-glibc-defaults",
            "--sequential",
        ])
        .expect("every flag");
        assert_eq!(o.epochs, 5, "a repeated flag keeps its last value");
        assert_eq!(o.holdout_from, NaiveDate::from_ymd_opt(2019, 8, 20));
        assert_eq!(
            (o.crop, o.max_steps, o.width, o.micro_batch, o.seed),
            (Some(32), Some(6), 4, 2, 9)
        );
        assert_eq!(o.shards.as_deref(), Some("s3://b/shards"));
        assert!(o.quiet);
        assert_eq!(
            (o.model.as_str(), o.unet_epochs, o.places_per_step),
            ("unet", 3, 3)
        );
        assert!(o.no_metadata && o.no_mask_attention);
        assert_eq!(o.with_input.as_deref(), Some("s1"));
        assert_eq!(
            only(&o),
            ModelInputs {
                optical: true,
                other: Some("s1".into())
            },
            "--with-input s1 is --inputs s2,s1"
        );
        for (list, optical, other) in [
            ("s2", true, None),
            ("s1", false, Some("s1")),
            ("s2,s1", true, Some("s1")),
            ("s1, s2", true, Some("s1")),
        ] {
            let o = parse(&["--inputs", list]).expect(list);
            assert_eq!(
                only(&o),
                ModelInputs {
                    optical,
                    other: other.map(String::from)
                },
                "{list}"
            );
        }
        assert_eq!(o.eval_world, Some(PathBuf::from("w.toml")));
        assert_eq!(o.eval_unet, Some(PathBuf::from("u.bpk")));
        assert!(o.no_calibration);
        assert_eq!(o.min_ship_px, 3);
        assert!(o.keep_glibc_defaults && o.sequential);

        assert_eq!(
            parse(&["--crop", "0"]).expect("--crop 0").crop,
            None,
            "whole tiles"
        );
        for bad in [
            &["--width", "0"][..],
            &["--micro-batch", "0"],
            &["--places-per-step", "0"],
            &["--model", "lstm"],
            &["--holdout-from", "2019-8-20x"],
            &["--epochs"],
            &["--frobnicate"],
            &["extra"],
            &["--inputs", "s1,s3"],
            &["--inputs", "s2,s2"],
            &["--inputs", "s2,"],
            &["--inputs", "s2", "--with-input", "s1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
