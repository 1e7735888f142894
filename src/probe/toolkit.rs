//! CUDA toolkit probe. (Being built.)
use super::{ProbeContext, Probed};
use crate::facts::ToolkitFacts;
pub fn probe(_ctx: &ProbeContext) -> Probed<ToolkitFacts> { Probed::ok(ToolkitFacts::default()) }
