//! The experiment file: typed, with the published protocol as defaults, `--set a.b=c`
//! overrides, and errors that name the offending key and list the valid ones.
use crate::data::classes::Protocol;
use crate::data::{DatasetKind, Split};
use crate::error::{Error, IoContext, Result};
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub kind: DatasetKind,
    pub root: PathBuf,
    pub split: Split,
    /// Restrict to the images named in this file (one per line).
    pub list: Option<PathBuf>,
    /// Keep only this many images, drawn with `subset_seed` (e.g. the few labelled target images
    /// of a semi-supervised setting; the same draw as `[method.ass] labelled`).
    pub subset: Option<usize>,
    pub subset_seed: u64,
    /// Keep instead the images that draw leaves out (ASS sets it on its unlabelled stream).
    pub subset_rest: bool,
    /// [width, height] every image is resized to (the protocol sizes).
    pub resize: Option<[u32; 2]>,
    /// [width, height] of a random crop after resizing.
    pub crop: Option<[u32; 2]>,
    pub flip: bool,
}

impl DataConfig {
    fn new(kind: DatasetKind, root: &str, split: Split, resize: [u32; 2]) -> Self {
        DataConfig {
            kind,
            root: root.into(),
            split,
            list: None,
            subset: None,
            subset_seed: 0,
            subset_rest: false,
            resize: Some(resize),
            crop: None,
            flip: false,
        }
    }
}

impl DataConfig {
    /// Open the dataset this section describes (list and subset applied).
    pub fn open(&self) -> Result<crate::data::Dataset> {
        let ds = crate::data::Dataset::open(self.kind, &self.root, self.split, self.list.as_deref())?;
        let total = ds.len();
        let ds = match (self.subset, self.subset_rest) {
            (Some(n), false) => ds.subset(n, self.subset_seed),
            (Some(n), true) => ds.subset_rest(n, self.subset_seed),
            (None, _) => ds,
        };
        if ds.is_empty() {
            let rest = if self.subset_rest { ", subset_rest: the images the draw leaves out" } else { "" };
            return Err(Error::format(
                &self.root,
                format!("no images selected (subset = {}{rest}) of the {total} images", self.subset.unwrap_or(0)),
            ));
        }
        Ok(ds)
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::new(DatasetKind::Cityscapes, "data/cityscapes", Split::Train, [1024, 512])
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Iterations to run (the reference code stops early, at 120k–150k).
    pub iters: u64,
    /// Horizon of the poly schedule (250k in the references).
    pub max_iters: u64,
    pub batch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub power: f64,
    /// LR multiplier of the classifier heads.
    pub head_lr_mult: f64,
    /// Weight of the auxiliary (layer3) segmentation loss.
    pub seg_aux_weight: f64,
    /// Learning rate of the methods' discriminators (Adam, betas 0.9/0.99, same poly decay).
    pub lr_d: f64,
    pub seed: u64,
    /// Validate every N iterations (0 = only at the end).
    pub eval_every: u64,
    /// Log losses every N iterations.
    pub log_every: u64,
    /// Start from another run: its weights (a run or checkpoint directory, or a .bpk), e.g.
    /// "runs/so/checkpoints/best", or a stage, another experiment trained first if missing:
    /// `{ experiment = "source_only.toml", checkpoint = "last" }` (`engine::stages`).
    pub init_from: Option<InitFrom>,
    /// Evaluate on at most this many validation images during training (0 = all).
    pub eval_images: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iters: 120_000,
            max_iters: 250_000,
            batch: 1,
            lr: 2.5e-4,
            momentum: 0.9,
            weight_decay: 5e-4,
            power: 0.9,
            head_lr_mult: 10.0,
            seg_aux_weight: 0.1,
            lr_d: 1e-4,
            seed: 1234,
            eval_every: 2000,
            log_every: 50,
            init_from: None,
            eval_images: 0,
        }
    }
}

/// Where training starts (`train.init_from`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum InitFrom {
    /// Another run's weights: a run or checkpoint directory, or a .bpk.
    Weights(PathBuf),
    /// The result of another experiment (a stage), trained first if missing.
    Stage(Stage),
}

/// Another experiment a run starts from: trained per seed, on the data of the experiment that
/// names it, into a directory shared by every experiment naming the same stage (`engine::stages`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The experiment file (relative to the file that names it).
    pub experiment: PathBuf,
    /// Which of its checkpoints: "last" (no selection on val) or "best".
    #[serde(default = "Stage::last")]
    pub checkpoint: String,
    /// Overrides of the stage's own keys, as `--set` gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// The stage's run directory, recorded when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<PathBuf>,
}

impl Stage {
    fn last() -> String {
        "last".into()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    pub protocol: Protocol,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig { protocol: Protocol::P19 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Methods whose losses are added up, e.g. ["advent", "minent"].
    pub methods: Vec<String>,
    /// The setting's label in reports and comparisons (default: the methods joined with '+'),
    /// so that two settings of one method (e.g. T2S-DA's UDA and DG modes) stay apart.
    pub name: Option<String>,
    pub source: DataConfig,
    pub target: DataConfig,
    /// Validation data (defaults to the target's val split).
    pub val: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    /// Per-method constants: `[method.adaptsegnet] lambda_adv_main = 0.001`.
    pub method: BTreeMap<String, toml::Table>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            methods: vec!["source_only".into()],
            name: None,
            source: DataConfig::new(DatasetKind::Gta5, "data/gta5", Split::All, [1280, 720]),
            target: DataConfig::default(),
            val: DataConfig::new(DatasetKind::Cityscapes, "data/cityscapes", Split::Val, [1024, 512]),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            method: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Read a TOML file (with the files its `base` chain names under it) and apply `key=value`
    /// overrides.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        let mut table = read_with_bases(path, &mut Vec::new())?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        Config::from_table(table).map_err(|e| match e {
            Error::Config { key, msg } => {
                // blame the `--set` that wrote the key, else the file
                let set = overrides.iter().find(|o| o.split_once('=').is_some_and(|(k, _)| key.starts_with(k.trim())));
                let from = match set {
                    Some(o) => format!("from --set {o}"),
                    None => format!("in {}", path.display()),
                };
                Error::Config { key, msg: format!("{msg} ({from})") }
            }
            e => e,
        })
    }

    pub fn from_table(table: toml::Table) -> Result<Config> {
        let de = toml::Value::Table(table);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            Error::config(if key == "." { "(top level)".to_string() } else { key }, e.into_inner().to_string())
        })?;
        // "{seed}" in a weights path names the run of the same seed (e.g. LSE starting from
        // the source-only run of its seed); "none" (or "") unsets a path, from `--set` too
        let seed = cfg.train.seed.to_string();
        let unset = |p: &Path| p.as_os_str().is_empty() || p == Path::new("none");
        if let Some(InitFrom::Weights(p)) = &mut cfg.train.init_from {
            *p = PathBuf::from(p.to_string_lossy().replace("{seed}", &seed));
        }
        if matches!(&cfg.train.init_from, Some(InitFrom::Weights(p)) if unset(p)) {
            cfg.train.init_from = None;
        }
        if let Some(crate::model::Init::File(p)) = &mut cfg.model.init {
            *p = PathBuf::from(p.to_string_lossy().replace("{seed}", &seed));
        }
        if matches!(&cfg.model.init, Some(crate::model::Init::File(p)) if unset(p)) {
            cfg.model.init = None;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every numeric key with a domain is inside it (a batch of 0 or a negative learning rate
    /// is a config error naming the key, not a crash deep inside training).
    fn validate(&self) -> Result<()> {
        let t = &self.train;
        let check = |ok: bool, key: &str, what: String| if ok { Ok(()) } else { Err(Error::config(key, what)) };
        let finite_at_least =
            |v: f64, lo: f64, key: &str| check(v.is_finite() && v >= lo, key, format!("{v}: must be a number ≥ {lo}"));
        check(t.iters >= 1, "train.iters", "0: must be at least 1".into())?;
        check(t.max_iters >= 1, "train.max_iters", "0: must be at least 1 (the poly schedule's horizon)".into())?;
        check(t.batch >= 1, "train.batch", "0: must be at least 1".into())?;
        check(t.log_every >= 1, "train.log_every", "0: must be at least 1".into())?;
        finite_at_least(t.lr, 0.0, "train.lr")?;
        finite_at_least(t.lr_d, 0.0, "train.lr_d")?;
        finite_at_least(t.weight_decay, 0.0, "train.weight_decay")?;
        finite_at_least(t.power, 0.0, "train.power")?;
        finite_at_least(t.seg_aux_weight, 0.0, "train.seg_aux_weight")?;
        check(
            t.momentum.is_finite() && (0.0..1.0).contains(&t.momentum),
            "train.momentum",
            format!("{}: must be in [0, 1)", t.momentum),
        )?;
        check(
            t.head_lr_mult.is_finite() && t.head_lr_mult > 0.0,
            "train.head_lr_mult",
            format!("{}: must be > 0", t.head_lr_mult),
        )?;
        check(
            self.model.width_mult.is_finite() && self.model.width_mult > 0.0,
            "model.width_mult",
            format!("{}: must be > 0", self.model.width_mult),
        )?;
        for (name, d) in [("source", &self.source), ("target", &self.target), ("val", &self.val)] {
            for (key, size) in [("resize", d.resize), ("crop", d.crop)] {
                if let Some([w, h]) = size {
                    check(
                        w >= 1 && h >= 1,
                        &format!("{name}.{key}"),
                        format!("[{w}, {h}]: both sides must be at least 1"),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The setting's label: `name`, or the methods joined with '+'.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.methods.join("+"))
    }

    /// The resolved config, every default filled in, as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// The constants of method `name` (`[method.NAME]`, defaults where a key is absent); a wrong
    /// key is an error naming it.
    pub fn method_params<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> Result<T> {
        let table = self.method.get(name).cloned().unwrap_or_default();
        serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| Error::config(format!("method.{name}.{}", e.path()), e.into_inner().to_string()))
    }

    /// `[method.NAME]` checked and completed with every default, so the resolved config in a
    /// run directory states each constant the run used.
    pub fn complete_method_params<T: Serialize + for<'de> Deserialize<'de> + Default>(
        &mut self,
        name: &str,
    ) -> Result<()> {
        let params: T = self.method_params(name)?;
        if let toml::Value::Table(t) = toml::Value::try_from(&params).expect("params serialise") {
            check_constants(&format!("method.{name}"), &t)?;
            self.method.insert(name.to_string(), t);
        }
        Ok(())
    }
}

#[cfg(test)]
impl Config {
    /// The default config running `method`, with `--set`s of the `[method.*]` tables applied.
    pub(crate) fn for_method(method: &str, sets: &[&str]) -> Config {
        let mut table = toml::Table::new();
        for set in sets {
            apply_override(&mut table, set).unwrap();
        }
        let mut cfg = Config { methods: vec![method.into()], ..Default::default() };
        if let Some(m) = table.get("method").and_then(|m| m.as_table()) {
            cfg.method = m.iter().map(|(k, v)| (k.clone(), v.as_table().unwrap().clone())).collect();
        }
        cfg
    }
}

/// The domains of the methods' constants, by their kind of name: every number is finite and
/// ≥ 0 (weights, thresholds, sizes); momenta, probabilities, proportions and thresholds are at
/// most 1; temperatures, sizes and counts that divide or repeat are above 0.
fn check_constants(prefix: &str, t: &toml::Table) -> Result<()> {
    const POSITIVE: [&str; 11] = [
        "steps",
        "proj_dim",
        "proj_hidden",
        "queries",
        "keys_per_class",
        "per_class_divisor",
        "upscale",
        "epochs_per_round",
        "patches_per_image",
        "area_ref",
        "ndf",
    ];
    for (k, v) in t {
        let key = format!("{prefix}.{k}");
        let x = match v {
            toml::Value::Table(sub) => {
                check_constants(&key, sub)?;
                continue;
            }
            toml::Value::Float(x) => *x,
            toml::Value::Integer(i) => *i as f64,
            _ => continue,
        };
        let at_most_one = k.ends_with("alpha")
            || k.ends_with("momentum")
            || k.ends_with("_p")
            || k.contains("threshold")
            || k.contains("confidence")
            || k.ends_with("fraction")
            || k.ends_with("portion")
            || k.starts_with("p_");
        let positive = k.contains("temperature") || POSITIVE.contains(&k.as_str());
        let bad = if !x.is_finite() || x < 0.0 {
            Some("must be a number ≥ 0")
        } else if at_most_one && x > 1.0 {
            Some("must be in [0, 1]")
        } else if positive && x <= 0.0 {
            Some("must be > 0")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(Error::config(key, format!("{x}: {why}")));
        }
    }
    Ok(())
}

/// A TOML file whose `base = "other.toml"` (relative to the file) names the experiment it
/// differs from: the base's table, recursively, with this file's keys merged over it (tables
/// key by key, any other value replaced), so a file states only what differs.
fn read_with_bases(path: &Path, chain: &mut Vec<PathBuf>) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::format(path, format!("not valid TOML: {}", e.message())))?;
    // a stage's experiment is named relative to this file, as `base` is; made absolute, so that
    // the config dumped into a run directory still names it
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(toml::Value::String(exp)) =
        table.get_mut("train").and_then(|t| t.get_mut("init_from")).and_then(|i| i.get_mut("experiment"))
    {
        let joined = dir.join(&*exp);
        *exp = joined.canonicalize().unwrap_or(joined).to_string_lossy().into_owned();
    }
    let Some(base) = table.remove("base") else { return Ok(table) };
    let toml::Value::String(base) = base else {
        return Err(Error::format(path, "`base` must be a path string, e.g. base = \"source_only.toml\""));
    };
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if chain.contains(&key) {
        return Err(Error::format(path, format!("`base` chain loops back to this file (via {base})")));
    }
    chain.push(key);
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&base);
    if !base_path.is_file() {
        return Err(Error::format(path, format!("`base = \"{base}\"`: no such file {}", base_path.display())));
    }
    let mut merged = read_with_bases(&base_path, chain)?;
    merge(&mut merged, table);
    Ok(merged)
}

/// `over`'s keys into `into`: tables merge key by key, any other value replaces.
fn merge(into: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// `a.b.c=value`: the value is parsed as TOML (numbers, booleans, arrays, quoted strings) and
/// taken as a bare string otherwise.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| Error::config(spec, "an override must look like key=value, e.g. train.iters=2000"))?;
    let key = key.trim();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| Error::config(key, format!("`{p}` is not a table")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_published_protocol() {
        let c = Config::default();
        assert_eq!(c.train.lr, 2.5e-4);
        assert_eq!(c.train.max_iters, 250_000);
        assert_eq!(c.source.resize, Some([1280, 720]));
        assert_eq!(c.target.resize, Some([1024, 512]));
        assert_eq!(c.model.aspp_branches, 4);
    }

    #[test]
    fn overrides_set_nested_keys_with_types() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "train.iters=2000").unwrap();
        apply_override(&mut t, "model.backbone=mobilenet_v2").unwrap();
        apply_override(&mut t, "methods=[\"advent\", \"minent\"]").unwrap();
        apply_override(&mut t, "target.resize=[256, 128]").unwrap();
        let c = Config::from_table(t).unwrap();
        assert_eq!(c.train.iters, 2000);
        assert_eq!(c.model.backbone, crate::model::BackboneKind::MobilenetV2);
        assert_eq!(c.methods, vec!["advent", "minent"]);
        assert_eq!(c.target.resize, Some([256, 128]));
    }

    #[test]
    fn an_unknown_key_is_named_with_the_valid_ones() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "train.iterz=5").unwrap();
        let e = Config::from_table(t).unwrap_err().to_string();
        assert!(e.contains("train.iterz"), "{e}");
        assert!(e.contains("iters") && e.contains("max_iters"), "{e}");
        let mut t = toml::Table::new();
        apply_override(&mut t, "eval.protocol=17").unwrap();
        let e = Config::from_table(t).unwrap_err().to_string();
        assert!(e.contains("eval.protocol") && e.contains("19, 16 or 13"), "{e}");
        assert!(apply_override(&mut toml::Table::new(), "novalue").is_err());
    }

    #[test]
    fn seed_placeholders_in_weight_paths() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "train.seed=3").unwrap();
        apply_override(&mut t, "train.init_from=\"runs/so/seed{seed}/checkpoints/best\"").unwrap();
        let c = Config::from_table(t).unwrap();
        assert_eq!(c.train.init_from.unwrap(), InitFrom::Weights("runs/so/seed3/checkpoints/best".into()));
    }

    /// `none` unsets the weights a base file named, from `--set` too; `imagenet` is a name.
    #[test]
    fn weights_can_be_unset_and_imagenet_is_named() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "model.init=\"imagenet\"").unwrap();
        apply_override(&mut t, "train.init_from=\"runs/so\"").unwrap();
        let c = Config::from_table(t.clone()).unwrap();
        assert_eq!(c.model.init, Some(crate::model::Init::Imagenet));
        apply_override(&mut t, "model.init=\"none\"").unwrap();
        apply_override(&mut t, "train.init_from=\"\"").unwrap();
        let c = Config::from_table(t).unwrap();
        assert_eq!((c.model.init, c.train.init_from), (None, None));
    }

    /// A stage's experiment is relative to the file that names it, through a base chain too,
    /// and the dumped config loads back as the same stage.
    #[test]
    fn a_stage_names_its_experiment_relative_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("adapt")).unwrap();
        std::fs::write(dir.path().join("so.toml"), "methods = [\"source_only\"]\n").unwrap();
        std::fs::write(
            dir.path().join("adapt/cont.toml"),
            "base = \"../so.toml\"\n[train]\ninit_from = { experiment = \"../so.toml\" }\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("adapt/m.toml"), "base = \"cont.toml\"\nmethods = [\"minent\"]\n").unwrap();
        let c = Config::load(&dir.path().join("adapt/m.toml"), &[]).unwrap();
        let Some(InitFrom::Stage(st)) = &c.train.init_from else { panic!("{:?}", c.train.init_from) };
        assert_eq!(st.experiment.canonicalize().unwrap(), dir.path().join("so.toml").canonicalize().unwrap());
        assert_eq!(st.checkpoint, "last");
        let dumped = dir.path().join("dumped.toml");
        std::fs::write(&dumped, c.to_toml()).unwrap();
        assert_eq!(Config::load(&dumped, &[]).unwrap().train.init_from, c.train.init_from);
    }

    #[test]
    fn a_base_file_is_merged_under_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w(
            "a.toml",
            "methods = [\"source_only\"]\n[train]\niters = 800\nlr = 0.003\n[method.minent]\nlambda_ent_main = 0.5\n",
        );
        w("b.toml", "base = \"a.toml\"\nmethods = [\"minent\"]\n[train]\niters = 400\n");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        w("sub/c.toml", "base = \"../b.toml\"\n[method.minent]\nlambda_ent_aux = 0.1\n");
        let c = Config::load(&dir.path().join("sub/c.toml"), &["train.seed=4".into()]).unwrap();
        assert_eq!(c.methods, vec!["minent"]);
        assert_eq!((c.train.iters, c.train.lr, c.train.seed), (400, 0.003, 4));
        let m = &c.method["minent"];
        assert_eq!((m["lambda_ent_main"].as_float(), m["lambda_ent_aux"].as_float()), (Some(0.5), Some(0.1)));
        // a missing base and a loop are errors naming the file
        w("d.toml", "base = \"nope.toml\"\n");
        let e = Config::load(&dir.path().join("d.toml"), &[]).unwrap_err().to_string();
        assert!(e.contains("d.toml") && e.contains("nope.toml"), "{e}");
        w("e.toml", "base = \"f.toml\"\n");
        w("f.toml", "base = \"e.toml\"\n");
        let e = Config::load(&dir.path().join("e.toml"), &[]).unwrap_err().to_string();
        assert!(e.contains("loops"), "{e}");
        w("g.toml", "base = 3\n");
        assert!(Config::load(&dir.path().join("g.toml"), &[]).unwrap_err().to_string().contains("path string"));
    }

    /// The methods' constants are checked too, each by its kind of name.
    #[test]
    fn out_of_domain_method_constants_are_named() {
        for (method, set, key) in [
            ("apoda", "method.apoda.epsilon=-1.0", "method.apoda.epsilon"),
            ("t2s", "method.t2s.temperature=0.0", "method.t2s.temperature"),
            ("t2s", "method.t2s.base.alpha=1.5", "method.t2s.base.alpha"),
            ("pit", "method.pit.seed_confidence=nan", "method.pit.seed_confidence"),
            ("pit", "method.pit.seed_portion=1.5", "method.pit.seed_portion"),
            ("pit", "method.pit.seed_scope=\"everywhere\"", "method.pit.seed_scope"),
            ("pit", "method.pit.grow_pivots=\"target\"", "method.pit.grow_pivots"),
            ("advent", "method.advent.ndf=0", "method.advent.ndf"),
            ("lse", "method.lse.p_max=2.0", "method.lse.p_max"),
            ("lse", "method.lse.epochs_per_round=0", "method.lse.epochs_per_round"),
        ] {
            let e = crate::methods::resolve(Config::for_method(method, &[set])).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        // the shipped defaults pass
        for m in crate::methods::names() {
            crate::methods::resolve(Config { methods: vec![m.to_string()], ..Default::default() }).unwrap();
        }
    }

    /// A bad value given with `--set` is blamed on the `--set`, not on the file.
    #[test]
    fn a_bad_set_is_blamed_on_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e.toml");
        std::fs::write(&f, "[train]\niters = 10\n").unwrap();
        let e = Config::load(&f, &["train.batch=0".into()]).unwrap_err().to_string();
        assert!(e.contains("from --set train.batch=0") && !e.contains("e.toml"), "{e}");
        std::fs::write(&f, "[train]\nbatch = 0\n").unwrap();
        assert!(Config::load(&f, &[]).unwrap_err().to_string().contains("e.toml"));
    }

    /// Values outside their domain are refused with the key (a batch of 0 panicked in a loader
    /// thread before).
    #[test]
    fn out_of_domain_numbers_are_config_errors_naming_the_key() {
        for (set, key) in [
            ("train.batch=0", "train.batch"),
            ("train.iters=0", "train.iters"),
            ("train.max_iters=0", "train.max_iters"),
            ("train.lr=-0.1", "train.lr"),
            ("train.lr=nan", "train.lr"),
            ("train.momentum=1.0", "train.momentum"),
            ("train.log_every=0", "train.log_every"),
            ("train.head_lr_mult=0", "train.head_lr_mult"),
            ("model.width_mult=0", "model.width_mult"),
            ("source.resize=[0, 10]", "source.resize"),
        ] {
            let mut table = toml::Table::new();
            apply_override(&mut table, set).unwrap();
            let e = Config::from_table(table).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        let mut table = toml::Table::new();
        apply_override(&mut table, "train.lr=0").unwrap();
        assert!(Config::from_table(table).is_ok(), "lr = 0 (nothing moves) is allowed");
    }

    #[test]
    fn the_dump_reads_back_identically() {
        let c = Config { methods: vec!["adaptsegnet".into()], ..Default::default() };
        let back = Config::from_table(toml::from_str(&c.to_toml()).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct P {
        lambda: f64,
    }

    #[test]
    fn method_params_are_checked_and_written_back() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "method.x.lambda=0.5").unwrap();
        let mut c = Config::from_table(t).unwrap();
        assert_eq!(c.method_params::<P>("x").unwrap(), P { lambda: 0.5 });
        // reading never writes back; completing does
        let _: P = c.method_params("y").unwrap();
        assert!(!c.to_toml().contains("[method.y]"));
        c.complete_method_params::<P>("y").unwrap();
        assert!(c.to_toml().contains("[method.y]"));
        let mut t = toml::Table::new();
        apply_override(&mut t, "method.x.lambd=0.5").unwrap();
        let c = Config::from_table(t).unwrap();
        let e = c.method_params::<P>("x").unwrap_err().to_string();
        assert!(e.contains("method.x.lambd") && e.contains("lambda"), "{e}");
    }
}
