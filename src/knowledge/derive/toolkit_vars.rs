//! The variables that choose a CUDA toolkit for builds (CUDA_HOME, CUDA_PATH, CUDA_ROOT,
//! CUDAToolkit_ROOT), judged: each one set must name a toolkit root that holds nvcc and that
//! this driver runs. PyTorch's extension builder, CMake's FindCUDAToolkit and llama-cpp-python's
//! source build read them before PATH, so a stale one makes a build fail or produce programs
//! that do not start.

use super::{same_folder, toolkit_views, Derived, ToolkitView};
use crate::facts::Facts;
use crate::knowledge::Os;
use schemars::JsonSchema;
use serde::Serialize;

/// The selector variables, with the `found_by` name the toolkit probe gives their toolkit.
const VARIABLES: [(&str, &str); 4] = [
    ("CUDA_HOME", "cuda_home"),
    ("CUDA_PATH", "cuda_path"),
    ("CUDA_ROOT", "cuda_root"),
    ("CUDAToolkit_ROOT", "cudatoolkit_root"),
];

/// One toolkit variable that names no usable toolkit.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ToolkitVariable {
    /// "CUDA_PATH".
    pub name: String,
    /// Its value.
    pub value: String,
    /// "missing" (no such folder), "no_nvcc" (the folder has no bin/nvcc), or
    /// "newer_than_driver" (a toolkit whose programs this driver cannot run).
    pub problem: String,
    /// The whole problem in words: "CUDA_PATH names /x, which does not exist".
    pub why: String,
    /// An installed toolkit with nvcc that this driver runs, to point the variable at; null
    /// when there is none.
    pub use_root: Option<String>,
    /// The variable's name, when removing it is the fix: nothing to point it at, and what it
    /// names is no toolkit.
    pub unset: Option<String>,
    /// PowerShell's path of the variable ("Env:CUDA_PATH").
    pub ps_path: String,
    /// `ps_path`, when removing the variable is the fix.
    pub ps_unset: Option<String>,
}

/// The toolkit variables with problems, in [`VARIABLES`] order.
pub fn toolkit_variables(facts: &Facts, derived: &Derived) -> Vec<ToolkitVariable> {
    let os = Os::from_facts(&facts.host.os);
    let views = toolkit_views(facts, derived);
    let usable =
        |v: &&ToolkitView| v.toolkit.nvcc.is_some() && v.driver_runs_programs != Some(false);
    VARIABLES
        .iter()
        .filter_map(|(name, found_by)| {
            let value = value_of(facts, name)?;
            let (problem, why, own_root) = problem(facts, &views, name, found_by, &value, os)?;
            let use_root = views
                .iter()
                .filter(usable)
                .find(|v| own_root.as_deref() != Some(v.toolkit.root.as_str()))
                .map(|v| v.toolkit.root.clone());
            let unset =
                (use_root.is_none() && problem != "newer_than_driver").then(|| name.to_string());
            Some(ToolkitVariable {
                name: name.to_string(),
                ps_path: format!("Env:{name}"),
                ps_unset: unset.as_ref().map(|n| format!("Env:{n}")),
                value,
                problem: problem.to_string(),
                why,
                use_root,
                unset,
            })
        })
        .collect()
}

fn value_of(facts: &Facts, name: &str) -> Option<String> {
    let env = &facts.host.env;
    let value = match name {
        "CUDA_HOME" => env.cuda_home.clone(),
        "CUDA_PATH" => env.cuda_path.clone(),
        other => env.other.get(other).cloned(),
    };
    value.filter(|v| !v.trim().is_empty())
}

/// What is wrong with the toolkit `name` names, in words, and that toolkit's root.
fn problem(
    facts: &Facts,
    views: &[ToolkitView],
    name: &str,
    found_by: &str,
    value: &str,
    os: Os,
) -> Option<(&'static str, String, Option<String>)> {
    if facts.toolkits.selector_errors.contains_key(name) {
        let why = format!("{name} names {value}, which does not exist");
        return Some(("missing", why, None));
    }
    let view = views.iter().find(|v| {
        v.toolkit.found_by.iter().any(|f| f == found_by) || same_folder(value, &v.toolkit.root, os)
    })?;
    let t = &view.toolkit;
    let root = Some(t.root.clone());
    if t.nvcc.is_none() {
        let why = format!(
            "{name} names {value}, which holds no bin/nvcc: it is not a CUDA toolkit's root"
        );
        return Some(("no_nvcc", why, root));
    }
    if view.driver_runs_programs == Some(false) {
        let version = t.version_short.as_deref().unwrap_or("(version unknown)");
        let why = format!(
            "{name} names CUDA {version} at {value}, whose programs this driver cannot run (it needs driver {} or newer)",
            view.min_driver_for_major.as_deref().unwrap_or("a newer one")
        );
        return Some(("newer_than_driver", why, root));
    }
    None
}
