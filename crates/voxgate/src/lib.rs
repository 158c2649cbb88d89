//! The pieces of the `voxgate` binary that benchmarks and tools reuse: the
//! embedded default agent (local models) and the offline `call` demo.

pub mod call;
pub mod local;
