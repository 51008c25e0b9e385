//! Loading weights into a [`SegNet`]: segda checkpoints (.bpk), safetensors, and PyTorch .pth
//! files from torchvision or the DeepLab-v2 releases (AdaptSegNet / ADVENT names), with a
//! report of what was loaded, what is missing (left at its initialisation) and what was unused.
use super::config::{BackboneKind, ModelConfig};
use super::deeplab::SegNet;
use crate::data::classes::NUM_CLASSES;
use crate::error::{Error, Result};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub file: PathBuf,
    pub applied: Vec<String>,
    /// Network parameters the file did not provide (they keep their initialisation).
    pub missing: Vec<String>,
    /// File tensors that went nowhere.
    pub unused: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: loaded {} tensors", self.file.display(), self.applied.len())?;
        let list = |f: &mut std::fmt::Formatter<'_>, what: &str, v: &[String]| -> std::fmt::Result {
            if !v.is_empty() {
                let shown: Vec<&str> = v.iter().take(12).map(|s| s.as_str()).collect();
                let more = if v.len() > 12 { format!(" … and {} more", v.len() - 12) } else { String::new() };
                writeln!(f, "  {what} ({}): {}{more}", v.len(), shown.join(", "))?;
            }
            Ok(())
        };
        list(f, "missing, left at initialisation", &self.missing)?;
        list(f, "unused tensors of the file", &self.unused)
    }
}

/// Load `path` into `net`. Which names are expected depends on the backbone.
pub fn load_weights(mut net: SegNet, path: &Path, cfg: &ModelConfig) -> Result<(SegNet, ImportReport)> {
    if !path.is_file() {
        return Err(Error::format(path, "weights file not found"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let report = match ext.as_str() {
        "bpk" => {
            net = net
                .try_load_file(path)
                .map_err(|e| Error::format(path, format!("not a segda checkpoint of this network ({e})")))?;
            ImportReport { file: path.to_path_buf(), applied: vec!["(all)".into()], ..Default::default() }
        }
        "safetensors" => load_safetensors(&mut net, path, cfg)?,
        "pth" | "pt" | "pkl" | "bin" => load_pytorch(&mut net, path, cfg)?,
        _ => return Err(Error::format(path, "unknown weights format: expected .pth/.pt, .safetensors or .bpk")),
    };
    Ok((net, report))
}

fn load_safetensors(net: &mut SegNet, path: &Path, cfg: &ModelConfig) -> Result<ImportReport> {
    let err = |e: burn::store::SafetensorsStoreError| Error::format(path, format!("cannot read safetensors ({e})"));
    let mut probe = SafetensorsStore::from_file(path);
    let keys = probe.keys().map_err(err)?;
    // segda's own exports use the network's names; anything else is taken as a PyTorch export
    let ours = keys.iter().any(|k| k.starts_with("backbone."));
    let mut store = SafetensorsStore::from_file(path).allow_partial(true).map_indices_contiguous(false);
    if !ours {
        let shapes: BTreeMap<String, Vec<usize>> =
            probe.get_all_tensors().map_err(err)?.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect();
        for (from, to) in rules_with_skips(cfg.backbone, &shapes).0 {
            store = store.with_key_remapping(from, to);
        }
        store = store.with_from_adapter(PyTorchToBurnAdapter);
    }
    let res = net.load_from(&mut store).map_err(err)?;
    Ok(ImportReport::from_result(path, res))
}

fn load_pytorch(net: &mut SegNet, path: &Path, cfg: &ModelConfig) -> Result<ImportReport> {
    let err = |e: burn::store::PytorchStoreError| Error::format(path, format!("cannot read PyTorch file ({e})"));
    let mut store = PytorchStore::from_file(path);
    let mut top = None;
    let mut tensors = store.get_all_tensors().map_err(err)?.clone();
    if !tensors.keys().any(|k| k.ends_with("weight")) {
        // a training checkpoint: the weights sit under one top-level key
        for key in ["state_dict", "model_state_dict", "model", "net"] {
            let mut s = PytorchStore::from_file(path).with_top_level_key(key);
            if let Ok(t) = s.get_all_tensors() {
                if t.keys().any(|k| k.ends_with("weight")) {
                    tensors = t.clone();
                    top = Some(key);
                    break;
                }
            }
        }
    }
    let shapes: BTreeMap<String, Vec<usize>> = tensors.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect();
    let mut store = PytorchStore::from_file(path).allow_partial(true).map_indices_contiguous(false);
    if let Some(t) = top {
        store = store.with_top_level_key(t);
    }
    let (rules, skipped_heads) = rules_with_skips(cfg.backbone, &shapes);
    for (from, to) in &rules {
        store = store.with_key_remapping(from, to.clone());
    }
    let res = net.load_from(&mut store).map_err(err)?;
    let mut report = ImportReport::from_result(path, res);
    if let super::deeplab::Backbone::Vgg(v) = &mut net.backbone {
        load_vgg_fc(v, &tensors, &mut report, path)?;
    }
    report.unused.retain(|u| !u.starts_with(SKIPPED));
    report.unused.extend(skipped_heads.into_iter().map(|k| format!("{k} (classifier for another class count)")));
    Ok(report)
}

impl ImportReport {
    fn from_result(path: &Path, res: burn::store::ApplyResult) -> Self {
        ImportReport {
            file: path.to_path_buf(),
            applied: res.applied,
            missing: res.missing.into_iter().map(|(p, _)| p).collect(),
            // BatchNorm's step counter has no counterpart and no effect on the outputs
            unused: res.unused.into_iter().filter(|u| !u.ends_with("num_batches_tracked")).collect(),
        }
    }
}

const SKIPPED: &str = "skipped.";

/// The rename rules, plus rules that set aside classifiers trained for another label set (e.g.
/// the 21-class MS-COCO DeepLab init), which would not fit. Returns the rules and those keys.
fn rules_with_skips(
    backbone: BackboneKind,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> (Vec<(String, String)>, Vec<String>) {
    let keys: Vec<String> = shapes.keys().cloned().collect();
    let rules = remap_rules(backbone, &keys);
    let mut skips = Vec::new();
    let mut skipped = Vec::new();
    for (k, shape) in shapes {
        let new = apply_rules(&rules, k);
        let head = new.starts_with("head.") || new.starts_with("aux_head.");
        if head && shape.first().copied() != Some(NUM_CLASSES) {
            // matched after the prefix-stripping rules, before the renames
            let stripped = apply_rules(&rules[..2], k);
            skips.push((format!("^{}$", regex::escape(&stripped)), format!("{SKIPPED}{stripped}")));
            skipped.push(k.clone());
        }
    }
    let mut all = rules[..2].to_vec();
    all.extend(skips);
    all.extend(rules[2..].iter().cloned());
    (all, skipped)
}

fn apply_rules(rules: &[(String, String)], key: &str) -> String {
    let mut k = key.to_string();
    for (from, to) in rules {
        let re = regex::Regex::new(from).expect("valid rule");
        k = re.replace_all(&k, to.as_str()).into_owned();
    }
    k
}

/// Regex renames from the reference implementations' names to ours.
pub fn remap_rules(backbone: BackboneKind, keys: &[String]) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = vec![(r"^module\.".into(), "".into()), (r"^Scale\.".into(), "".into())];
    let has = |prefix: &str| {
        keys.iter().any(|k| k.trim_start_matches("module.").trim_start_matches("Scale.").starts_with(prefix))
    };
    match backbone {
        BackboneKind::Resnet18 | BackboneKind::Resnet50 | BackboneKind::Resnet101 => {
            r.push((r"^(conv1|bn1|layer[1-4])\.".into(), "backbone.$1.".into()));
            r.push((r"\.downsample\.0\.".into(), ".downsample.conv.".into()));
            r.push((r"\.downsample\.1\.".into(), ".downsample.bn.".into()));
            if has("layer6.") {
                // multi-level DeepLab (AdaptSegNet / ADVENT): layer5 on layer3, layer6 on layer4
                r.push((r"^layer5\.conv2d_list\.".into(), "aux_head.convs.".into()));
                r.push((r"^layer6\.conv2d_list\.".into(), "head.convs.".into()));
            } else {
                r.push((r"^layer5\.conv2d_list\.".into(), "head.convs.".into()));
            }
        }
        BackboneKind::MobilenetV2 => {
            r.push((r"^features\.0\.0\.".into(), "backbone.stem.conv.".into()));
            r.push((r"^features\.0\.1\.".into(), "backbone.stem.bn.".into()));
            r.push((r"^features\.1\.conv\.0\.0\.".into(), "backbone.blocks.0.dw.conv.".into()));
            r.push((r"^features\.1\.conv\.0\.1\.".into(), "backbone.blocks.0.dw.bn.".into()));
            r.push((r"^features\.1\.conv\.1\.".into(), "backbone.blocks.0.project.conv.".into()));
            r.push((r"^features\.1\.conv\.2\.".into(), "backbone.blocks.0.project.bn.".into()));
            for k in 2..=17 {
                let b = k - 1;
                for (from, to) in [
                    ("0.0", "expand.conv"),
                    ("0.1", "expand.bn"),
                    ("1.0", "dw.conv"),
                    ("1.1", "dw.bn"),
                    ("2", "project.conv"),
                    ("3", "project.bn"),
                ] {
                    r.push((
                        format!(r"^features\.{k}\.conv\.{}\.", from.replace('.', r"\.")),
                        format!("backbone.blocks.{b}.{to}."),
                    ));
                }
            }
        }
        BackboneKind::Vgg16 => {
            // torchvision numbers the 13 convs among the ReLU/pool layers of `features`
            const CONV_IDX: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
            for (i, k) in CONV_IDX.iter().enumerate() {
                r.push((format!(r"^features\.{k}\."), format!("backbone.convs.{i}.")));
            }
        }
    }
    r
}

/// torchvision's fc6/fc7 are Linear layers; ours are the equivalent 7×7 and 1×1 convolutions.
fn load_vgg_fc(
    v: &mut super::vgg::Vgg16,
    tensors: &BTreeMap<String, burn::store::burn_pack::Tensor>,
    report: &mut ImportReport,
    path: &Path,
) -> Result<()> {
    for (key, conv) in [("classifier.0", &mut v.fc6), ("classifier.3", &mut v.fc7)] {
        let (Some(w), Some(b)) = (tensors.get(&format!("{key}.weight")), tensors.get(&format!("{key}.bias"))) else {
            continue;
        };
        let dims = conv.weight.shape().dims::<4>();
        let want: usize = dims.iter().product();
        let bytes = w.to_bytes().map_err(|e| Error::format(path, format!("{key}.weight: {e}")))?;
        let vals: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if vals.len() != want {
            return Err(Error::format(
                path,
                format!("{key}.weight has {} values, the network's {key} needs {want} ({dims:?})", vals.len()),
            ));
        }
        let device = conv.weight.device();
        conv.weight = Param::from_tensor(Tensor::<4>::from_data(TensorData::new(vals, dims), &device));
        let bbytes = b.to_bytes().map_err(|e| Error::format(path, format!("{key}.bias: {e}")))?;
        let bvals: Vec<f32> = bbytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let n = bvals.len();
        conv.bias = Some(Param::from_tensor(Tensor::<1>::from_data(TensorData::new(bvals, [n]), &device)));
        for s in ["weight", "bias"] {
            let k = format!("{key}.{s}");
            report.unused.retain(|u| u != &k);
            let mine = format!("backbone.{}.{s}", if key == "classifier.0" { "fc6" } else { "fc7" });
            report.missing.retain(|m| m != &mine);
            report.applied.push(mine);
        }
    }
    Ok(())
}

/// Write the network's parameters as safetensors with segda's names (for `segda import --out`).
pub fn save_safetensors(net: &SegNet, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    net.save_into(&mut store).map_err(|e| Error::format(path, format!("cannot write safetensors ({e})")))
}
