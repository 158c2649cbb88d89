//! The pieces of the `voxgate` binary that benchmarks and tools reuse: the
//! agent's providers as configured (local models by default) and the
//! offline `call` demo.

pub mod agent;
pub mod call;
