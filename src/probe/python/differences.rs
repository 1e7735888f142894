//! Where the static tier's guess (files) and the live tier's answer (the environment's own
//! interpreter) disagree about torch and llama-cpp-python: one sees the package and the other
//! does not, or they find it in different folders. Both answers stay in the facts; this list
//! says where they part, so that judging and the reader know the live answer overrode a guess.

use crate::facts::python::{ImportPath, PythonEnv, StaticLiveDifference};
use std::path::Path;

/// The differences for `env`; empty without a live answer that ran to the end.
pub(crate) fn of(env: &PythonEnv) -> Vec<StaticLiveDifference> {
    let Some(live) = env.live.as_ref().filter(|l| l.status == "ok") else {
        return Vec::new();
    };
    let torch = Side {
        installed: env.torch.installed,
        found_in: env.torch.found_in.as_ref(),
        import_ok: live.torch.import_ok,
        import_error: live.torch.import_error.as_deref(),
        location: live.torch.location.as_deref(),
    };
    let llama = Side {
        installed: env.llama_cpp.installed,
        found_in: env.llama_cpp.found_in.as_ref(),
        import_ok: live.llama_cpp.import_ok,
        import_error: live.llama_cpp.import_error.as_deref(),
        location: live.llama_cpp.location.as_deref(),
    };
    [("torch", torch), ("llama_cpp", llama)]
        .into_iter()
        .filter_map(|(package, side)| side.difference(package))
        .collect()
}

/// What each tier said of one package.
struct Side<'a> {
    installed: bool,
    found_in: Option<&'a ImportPath>,
    import_ok: bool,
    import_error: Option<&'a str>,
    location: Option<&'a str>,
}

impl Side<'_> {
    fn difference(&self, package: &str) -> Option<StaticLiveDifference> {
        let not_found = self
            .import_error
            .is_some_and(|e| e.contains("No module named"));
        let disagree = match (self.installed, self.import_ok) {
            (false, true) => true,
            (true, false) => not_found,
            (true, true) => match (self.found_in, self.location) {
                (Some(found), Some(location)) => !same_folder(&found.path, location),
                _ => false,
            },
            (false, false) => false,
        };
        disagree.then(|| StaticLiveDifference {
            package: package.to_string(),
            static_answer: self.static_words(),
            live_answer: self.live_words(),
        })
    }

    fn static_words(&self) -> String {
        match (self.installed, self.found_in) {
            (false, _) => "not installed".into(),
            (true, None) => "installed".into(),
            (true, Some(p)) => match &p.via {
                Some(via) => format!("installed in {} ({} via {via})", p.path, p.reached_by),
                None => format!("installed in {} ({})", p.path, p.reached_by),
            },
        }
    }

    fn live_words(&self) -> String {
        match (self.import_ok, self.location, self.import_error) {
            (true, Some(location), _) => format!("imported from {location}"),
            (true, None, _) => "imported".into(),
            (false, _, Some(error)) => format!("import failed: {error}"),
            (false, _, None) => "not found".into(),
        }
    }
}

/// Two spellings of one folder (symlinks resolved where they exist).
fn same_folder(a: &str, b: &str) -> bool {
    let canonical = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| Path::new(p).into());
    a == b || canonical(a) == canonical(b)
}
