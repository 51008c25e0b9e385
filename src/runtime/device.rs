//! `--device`: which backend and device a command computes on.
//!
//! - `cpu`: burn's Flex backend with this crate's CPU kernels (always built in);
//! - `cuda:N` (feature `cuda`): NVIDIA GPU N through CUDA C++ and NVRTC;
//! - `wgpu`, `wgpu:N`, `wgpu:integrated:N`, `wgpu:virtual:N`, `wgpu:cpu` (feature `wgpu`): burn's
//!   wgpu backend (Vulkan, Metal or DirectX): the best GPU, discrete GPU N, integrated or virtual
//!   GPU N, or a CPU adapter such as Mesa's software Vulkan driver (lavapipe).
//!
//! Each GPU device is opened up front, so a missing driver or adapter is an error naming the
//! device here rather than a panic on one of burn's worker threads at first use.
use crate::error::{Error, Result};
use burn::prelude::Device;

/// The device `spec` names, opened and ready.
pub fn parse(spec: &str) -> Result<Device> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "cpu" if rest.is_empty() => Ok(Device::flex()),
        "cuda" => cuda(spec, rest),
        "wgpu" => wgpu(spec, rest),
        _ => Err(bad(spec, "expected cpu, cuda:N or wgpu[:N|:integrated:N|:virtual:N|:cpu]")),
    }
}

fn bad(spec: &str, why: impl std::fmt::Display) -> Error {
    Error::Other(format!("--device {spec}: {why}"))
}

#[cfg(any(feature = "cuda", feature = "wgpu-unfused"))]
fn index(spec: &str, s: &str) -> Result<usize> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse().map_err(|_| bad(spec, format!("`{s}` is not a device index")))
}

#[cfg(feature = "cuda")]
fn cuda(spec: &str, rest: &str) -> Result<Device> {
    let idx = index(spec, rest)?;
    check_cuda(spec, idx)?;
    Ok(Device::cuda(idx))
}

#[cfg(not(feature = "cuda"))]
fn cuda(spec: &str, _: &str) -> Result<Device> {
    Err(bad(spec, "this binary was built without CUDA; rebuild with `cargo build --release --features cuda`"))
}

/// What burn's CUDA backend would otherwise panic on, on a worker thread at first use: the driver
/// library, a device with this index, and NVRTC (kernels are compiled from CUDA C++ at run time).
#[cfg(feature = "cuda")]
fn check_cuda(spec: &str, idx: usize) -> Result<()> {
    use cudarc::driver::result as drv;
    // SAFETY: only tries to open the shared library (and closes it again).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(bad(
            spec,
            "the CUDA driver library (libcuda.so) cannot be loaded: no NVIDIA driver on this machine, or its \
             directory is missing from LD_LIBRARY_PATH",
        ));
    }
    drv::init().map_err(|e| bad(spec, format!("CUDA driver initialisation failed: {e}")))?;
    let count = drv::device::get_count().map_err(|e| bad(spec, format!("cannot count CUDA devices: {e}")))?;
    if idx >= count.max(0) as usize {
        return Err(bad(spec, format!("only {count} CUDA device(s) visible")));
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(bad(
            spec,
            "NVRTC (libnvrtc.so), which compiles the kernels at run time, cannot be loaded: add the CUDA \
             toolkit's lib64 directory to LD_LIBRARY_PATH",
        ));
    }
    // NVRTC compiles against the toolkit's headers; cubecl panics on first use without them
    if !cubecl_cuda::install::cuda_path().is_some_and(|p| p.join("include").is_dir()) {
        return Err(bad(
            spec,
            "the CUDA toolkit's headers (CUDA_PATH/include), which NVRTC compiles the kernels with, are not \
             found: set CUDA_PATH to the toolkit's directory (default /usr/local/cuda)",
        ));
    }
    Ok(())
}

#[cfg(any(feature = "wgpu", feature = "wgpu-unfused"))]
fn wgpu(spec: &str, rest: &str) -> Result<Device> {
    use burn::prelude::DeviceKind;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    let kind = match rest.split_once(':').unwrap_or((rest, "")) {
        ("", _) => DeviceKind::DefaultDevice,
        ("cpu", "") => DeviceKind::Cpu,
        ("integrated", n) => DeviceKind::IntegratedGpu(index(spec, n)?),
        ("virtual", n) => DeviceKind::VirtualGpu(index(spec, n)?),
        ("discrete", n) => DeviceKind::DiscreteGpu(index(spec, n)?),
        (n, "") => DeviceKind::DiscreteGpu(index(spec, n)?),
        _ => return Err(bad(spec, "expected wgpu, wgpu:N, wgpu:integrated:N, wgpu:virtual:N or wgpu:cpu")),
    };
    // A runtime initialises once per process; later lookups of the same spec reuse it.
    static OPENED: OnceLock<Mutex<HashMap<DeviceKind, Device>>> = OnceLock::new();
    let mut opened = OPENED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = opened.get(&kind) {
        return Ok(d.clone());
    }
    let device = Device::wgpu_options().device_kind(kind.clone()).init().map_err(|e| {
        bad(spec, format!("no such wgpu adapter ({e}); `vulkaninfo --summary` lists the Vulkan devices, and on a machine without a GPU Mesa's software driver (Debian: mesa-vulkan-drivers) gives `wgpu:cpu`"))
    })?;
    opened.insert(kind, device.clone());
    Ok(device)
}

#[cfg(not(any(feature = "wgpu", feature = "wgpu-unfused")))]
fn wgpu(spec: &str, _: &str) -> Result<Device> {
    Err(bad(spec, "this binary was built without wgpu; rebuild with `cargo build --release --features wgpu`"))
}

/// Whether `device` runs on burn's CPU backend (where this crate's own kernels apply).
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_specs_name_the_flag_and_the_choices() {
        for spec in ["gpu", "cpu:1", "cuda:x", "wgpu:foo:bar", ""] {
            let e = super::parse(spec).unwrap_err().to_string();
            assert!(e.contains(&format!("--device {spec}")), "{e}");
        }
        assert!(super::parse("cpu").is_ok());
    }
}
