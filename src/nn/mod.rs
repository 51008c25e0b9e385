//! Building blocks of the networks and the methods, on every backend: layers, losses, resize.
//! Each routes to this crate's CPU kernels (`kernels`) where they apply and to burn's ops
//! everywhere else.
pub mod layers;
pub mod losses;
pub mod resize;
