//! Stand-in for the `cubecl-llvm` crate, used in place of the crates.io one through
//! `[patch.crates-io]` in segda's Cargo.toml.
//!
//! Why it exists: burn's `cuda` backend uses `cubecl-cuda` 0.11.3, which always depends on
//! `cubecl-llvm` (feature `nvptx`). The real crate's build script downloads an LLVM bundle from
//! GitHub, which is impossible offline, and no system LLVM provides what it links against. segda
//! turns on `cubecl-cuda`'s `cpp` feature, so CUDA kernels are transpiled to CUDA C++ and
//! compiled by NVRTC at run time; the LLVM backend is never selected. This crate only provides
//! the items `cubecl-cuda` names, so that it compiles and links:
//!
//! * `PlironCompiler`, a `Compiler` whose `compile` always returns an error;
//! * `PlironOptions`, `PlironArtifact`, `NvptxModule`, `LlvmTarget` (data only);
//! * `nvptx::ptx_version::PtxVersion` (the PTX ISA version a CUDA driver loads);
//! * `shared::lowered_features::{GpuTarget, restrict_features}` (a no-op here: it is only
//!   called when the LLVM backend is the selected one).
//!
//! It is written for this project, without LLVM or pliron, and is not a copy of the real crate.

use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::{CompilationError, Compiler};
use cubecl_runtime::kernel::BufferIOAttr;

pub use shared::{NvptxModule, PlironArtifact, PlironCompiler, PlironOptions};
pub use target::LlvmTarget;

pub mod target {
    /// Which target the (absent) LLVM backend would compile for.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum LlvmTarget {
        #[default]
        Cpu,
        Nvptx,
    }
}

pub mod nvptx {
    pub mod ptx_version {
        use core::fmt;
        use std::ffi::CString;

        /// A PTX ISA version written as major*10 + minor (PTX 8.7 is 87).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        impl PtxVersion {
            /// Newest PTX ISA that a driver of CUDA version `driver` (as `cuDriverGetVersion`
            /// gives it, 12.8 = 12080) loads, following NVIDIA's PTX ISA release notes; `None`
            /// before CUDA 10.0. Only the LLVM backend reads it.
            pub fn for_driver(driver: i32) -> Option<Self> {
                DRIVER_TO_PTX
                    .iter()
                    .rev()
                    .find(|&&(cuda, _)| driver >= cuda)
                    .map(|&(_, ptx)| Self(ptx))
            }

            /// The NVPTX target feature naming this version, e.g. `+ptx87`.
            pub fn target_feature(self) -> CString {
                CString::new(format!("+{self}")).expect("no NUL in the feature name")
            }
        }

        /// (first CUDA version, PTX ISA it introduced), oldest first.
        const DRIVER_TO_PTX: [(i32, u32); 21] = [
            (10000, 63), (10010, 64), (10020, 65),
            (11000, 70), (11010, 71), (11020, 72), (11030, 73), (11040, 74),
            (11050, 75), (11060, 76), (11070, 77), (11080, 78),
            (12000, 80), (12010, 81), (12020, 82), (12030, 83), (12040, 84),
            (12050, 85), (12080, 87), (12090, 88), (13000, 90),
        ];

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }
    }
}

pub mod shared {
    use super::*;

    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// GPU target whose LLVM lowering would restrict the advertised features.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            Nvptx,
        }

        /// No-op: `cubecl-cuda` calls this only when the LLVM backend compiles kernels, which
        /// never happens with its `cpp` feature on (and would fail in `PlironCompiler::compile`).
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }

    /// Compiler that always refuses: there is no LLVM in this build.
    #[derive(Clone, Debug, Default)]
    pub struct PlironCompiler {
        pub target: LlvmTarget,
    }

    /// Options the LLVM backend would read; kept so `cubecl-cuda` can fill them in.
    #[derive(Clone, Debug, Default)]
    pub struct PlironOptions {
        pub arch: Option<()>,
        pub sm_arch: Option<SmArch>,
        pub ptx_version: Option<crate::nvptx::ptx_version::PtxVersion>,
        pub grid_constants: bool,
    }

    /// A PTX module as the LLVM backend would hand it over (never built here).
    #[derive(Clone, Debug)]
    pub struct NvptxModule {
        /// NUL-terminated PTX text.
        pub ptx: Vec<core::ffi::c_char>,
        pub entrypoint: String,
        pub ir: String,
        pub shared_memory_size: usize,
        pub io: Vec<BufferIOAttr>,
    }

    /// What `PlironCompiler::compile` would produce.
    #[derive(Clone, Debug)]
    pub enum PlironArtifact {
        NvptxCode(NvptxModule),
    }

    impl core::fmt::Display for PlironArtifact {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                PlironArtifact::NvptxCode(module) => f.write_str(&module.ir),
            }
        }
    }

    impl Compiler for PlironCompiler {
        type Representation = PlironArtifact;
        type CompilationOptions = PlironOptions;

        fn compile(
            &mut self,
            _kernel: KernelDefinition,
            _options: &Self::CompilationOptions,
        ) -> Result<Self::Representation, CompilationError> {
            Err(CompilationError::Generic {
                reason: "the LLVM backend is not part of this build (offline stand-in for \
                         cubecl-llvm); CUDA kernels go through CUDA C++ and NVRTC instead"
                    .to_string(),
                backtrace: BackTrace::capture(),
            })
        }

        fn buffer_io(repr: &Self::Representation) -> Option<Vec<BufferIOAttr>> {
            match repr {
                PlironArtifact::NvptxCode(module) => Some(module.io.clone()),
            }
        }

        fn extension(&self) -> &'static str {
            "ll"
        }

        fn lang_tag(&self) -> &'static str {
            "llvm"
        }
    }
}
