//! CUDA driver API probe. (Being built.)
use super::{ProbeContext, Probed};
use crate::facts::CudaFacts;
pub fn probe(_ctx: &ProbeContext) -> Probed<CudaFacts> { Probed::ok(CudaFacts::default()) }
