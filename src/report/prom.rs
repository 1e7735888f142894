//! The prom format: Prometheus text exposition (0.0.4) for node_exporter's textfile
//! collector, clean under `promtool check metrics`.
//!
//! Names carry the `gpu_doctor_` prefix and base units; every metric has HELP and TYPE; no
//! sample has a timestamp (node_exporter skips a whole file that has one). Per-GPU series use
//! dcgm-exporter's label names `gpu` (the NVML index) and `UUID`, so PromQL can join them with
//! DCGM's telemetry. Series are unique (node_exporter rejects a file with a duplicate), and
//! label values and HELP text are escaped.
//!
//! The renderer writes to stdout like every format; `--output` writes through
//! [`crate::files::write_report`]: a temporary file (named `.NAME.PID.N.tmp`, which the textfile
//! collector, reading only `*.prom`, ignores) renamed into place, as a textfile directory needs.

use super::{severity_word, ReportInput};
use crate::facts::{Facts, Gpu};
use crate::rules::{Finding, Severity};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One metric family being written: name, help, type, then samples.
struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
}

impl<'o> Family<'o> {
    fn new(out: &'o mut String, name: &'static str, kind: &str, help: &str) -> Family<'o> {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

pub fn render(input: &ReportInput) -> String {
    let mut out = String::new();
    verdict(&mut out, input);
    findings(&mut out, input);
    probes(&mut out, input);
    gpus(&mut out, input);
    out
}

fn verdict(out: &mut String, input: &ReportInput) {
    let v = input.verdict;
    let f = input.facts;
    Family::new(
        out,
        "gpu_doctor_ready",
        "gauge",
        "1 when no finding is at or above the fail level (exit code 0), else 0.",
    )
    .sample(&[("fail_on", v.fail_on)], if v.ready { 1.0 } else { 0.0 });
    Family::new(
        out,
        "gpu_doctor_exit_code",
        "gauge",
        "The exit code of the run: 0 ready, 1 not ready.",
    )
    .sample(&[], f64::from(v.exit_code));
    let mut counts = Family::new(
        out,
        "gpu_doctor_findings",
        "gauge",
        "Number of findings of the run, by severity.",
    );
    for (s, n) in [
        (Severity::Error, v.errors),
        (Severity::Warn, v.warnings),
        (Severity::Info, v.infos),
    ] {
        counts.sample(&[("severity", severity_word(s))], n as f64);
    }
    Family::new(
        out,
        "gpu_doctor_last_run_timestamp_seconds",
        "gauge",
        "When the facts were collected, in seconds since the Unix epoch.",
    )
    .sample(&[], f.collected_at_unix as f64);
    Family::new(
        out,
        "gpu_doctor_build_info",
        "gauge",
        "The gpu-doctor that wrote this file, and the profile it probed with.",
    )
    .sample(
        &[("version", &f.tool.version), ("profile", &f.profile)],
        1.0,
    );
}

/// One series per distinct finding, labelled with the GPU it is about when it is about one.
fn findings(out: &mut String, input: &ReportInput) {
    let mut seen = BTreeSet::new();
    let mut family = Family::new(
        out,
        "gpu_doctor_finding",
        "gauge",
        "1 for each finding of the run; gpu and UUID name the GPU as dcgm-exporter does.",
    );
    for f in input.findings {
        let gpu = gpu_of(f, input.facts);
        let index = gpu.map(|g| g.index.to_string()).unwrap_or_default();
        let uuid = gpu.map(|g| g.uuid.as_str()).unwrap_or("");
        let subject = f.subject.as_deref().unwrap_or("");
        let key = (f.rule.clone(), subject.to_string());
        if !seen.insert(key) {
            continue;
        }
        family.sample(
            &[
                ("rule", &f.rule),
                ("severity", severity_word(f.severity)),
                ("category", &f.category),
                ("subject", subject),
                ("gpu", &index),
                ("UUID", uuid),
            ],
            1.0,
        );
    }
}

fn probes(out: &mut String, input: &ReportInput) {
    let probes = &input.facts.probes;
    let mut durations = Family::new(
        out,
        "gpu_doctor_probe_duration_seconds",
        "gauge",
        "How long each probe ran, in seconds.",
    );
    for (name, p) in probes {
        durations.sample(&[("probe", name)], p.duration_ms / 1000.0);
    }
    let mut status = Family::new(
        out,
        "gpu_doctor_probe_status",
        "gauge",
        "1 for the status each probe ended with: ok, absent, failed, timed_out, crashed or skipped.",
    );
    for (name, p) in probes {
        status.sample(&[("probe", name), ("status", p.status.as_str())], 1.0);
    }
}

/// Per GPU: what it is, and whether any failing finding is about it.
fn gpus(out: &mut String, input: &ReportInput) {
    let gpus = &input.facts.driver.gpus;
    let driver = input.facts.driver.version.as_deref().unwrap_or("");
    let mut info = Family::new(
        out,
        "gpu_doctor_gpu_info",
        "gauge",
        "1 per GPU NVML sees; gpu and UUID as dcgm-exporter names them, to join on.",
    );
    for g in gpus {
        let index = g.index.to_string();
        info.sample(
            &[
                ("gpu", &index),
                ("UUID", &g.uuid),
                ("model_name", &g.name),
                ("pci_bus_id", &g.pci_bus_id),
                ("compute_capability", &g.compute_capability),
                ("driver_version", driver),
            ],
            1.0,
        );
    }
    let mut ready = Family::new(
        out,
        "gpu_doctor_gpu_ready",
        "gauge",
        "0 when a finding at or above the fail level is about this GPU, else 1.",
    );
    for g in gpus {
        let failing = input.findings.iter().any(|f| {
            input.verdict.fails(f.severity)
                && gpu_of(f, input.facts).is_some_and(|x| x.index == g.index)
        });
        let index = g.index.to_string();
        ready.sample(
            &[("gpu", &index), ("UUID", &g.uuid)],
            if failing { 0.0 } else { 1.0 },
        );
    }
}

/// The GPU a finding is about: "GPU 3 (name)" by NVML index; "CUDA device 0 (name)" by the
/// CUDA device's UUID, since CUDA ordinals are not NVML indices.
fn gpu_of<'g>(f: &Finding, facts: &'g Facts) -> Option<&'g Gpu> {
    let subject = f.subject.as_deref()?;
    let gpus = &facts.driver.gpus;
    match f.scope.as_str() {
        "gpu" => {
            let index: u32 = number_after(subject, "GPU ")?;
            gpus.iter().find(|g| g.index == index)
        }
        "cuda_device" => {
            let ordinal: u32 = number_after(subject, "CUDA device ")?;
            let device = facts.cuda.devices.iter().find(|d| d.ordinal == ordinal)?;
            let uuid = device.uuid.as_deref()?;
            let bare = |u: &'g str| u.strip_prefix("GPU-").unwrap_or(u);
            gpus.iter().find(|g| {
                bare(&g.uuid).eq_ignore_ascii_case(uuid.strip_prefix("GPU-").unwrap_or(uuid))
            })
        }
        _ => None,
    }
}

/// The number right after `prefix` in "GPU 3 (NVIDIA ...)".
fn number_after(subject: &str, prefix: &str) -> Option<u32> {
    subject
        .strip_prefix(prefix)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// A sample value as the text format spells it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }

    #[test]
    fn numbers_are_spelt_as_the_text_format_wants() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu_doctor.prom");
        std::fs::write(&path, "old\n").unwrap();
        crate::files::write_report(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temp file was left: {names:?}");
    }
}
