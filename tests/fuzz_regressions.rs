//! Every input the fuzzer ever crashed or hung a target with (fuzz/regressions/TARGET/), fed
//! again to the same entry point (`gpu_doctor::fuzzing`), so a fixed bug stays fixed without
//! running the fuzzer. Also the seeds (fuzz/corpus/TARGET/): each must go through without a
//! crash too.
//!
//! Each input runs on a thread with the stack a fuzzer's main thread has; a watchdog turns a
//! hang (the bug some of these inputs found) into a failure instead of a stuck test run.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("gguf_reader", gpu_doctor::fuzzing::gguf_reader),
    ("rules_loader", gpu_doctor::fuzzing::rules_loader),
    ("facts_reader", gpu_doctor::fuzzing::facts_reader),
    ("elf_reader", gpu_doctor::fuzzing::elf_reader),
    ("log_parser", gpu_doctor::fuzzing::log_parser),
    ("config_loader", gpu_doctor::fuzzing::config_loader),
    ("rules_cost", gpu_doctor::fuzzing::rules_cost),
];

/// Far longer than any of these inputs takes (milliseconds); only a hang gets near it.
const HANG: Duration = Duration::from_secs(120);

fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Run `target` on `input` on an 8 MiB stack (a fuzzer's main thread) under the watchdog.
fn replay(name: &str, target: Target, input: &Path) {
    let data = fs::read(input).unwrap();
    let (done, finished) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            target(&data);
            let _ = done.send(());
        })
        .unwrap();
    match finished.recv_timeout(HANG) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{name} crashed on {}", input.display())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name} hangs on {}", input.display())
        }
    }
}

#[test]
fn every_regression_input_goes_through() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for input in inputs("regressions", name) {
            replay(name, *target, &input);
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "fuzz/regressions is empty: the replay checks nothing"
    );
}

#[test]
fn every_seed_goes_through() {
    for (name, target) in TARGETS {
        let seeds = inputs("corpus", name);
        assert!(
            !seeds.is_empty(),
            "no seeds for {name} in fuzz/corpus/{name}"
        );
        for input in seeds {
            replay(name, *target, &input);
        }
    }
}
