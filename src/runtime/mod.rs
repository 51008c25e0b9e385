//! Where and how the computation runs: the device (`--device`), the compute thread pool and the
//! allocator's settings.
pub mod alloc;
pub mod device;
pub mod pool;
