//! The human format, in the manner of flutter doctor: one line per category with a status box,
//! the findings of that category indented under it with the fix command for this machine's
//! shell, and a last line that counts what was found.
//!
//! Categories print in a fixed order whatever order the probes finished in. Colour only on a
//! terminal (owo-colors decides; NO_COLOR and --color are applied before rendering); plain
//! ASCII glyphs when the locale is not UTF-8.

use super::{visible, ReportInput};
use crate::facts::{Facts, ProbeOutcome, ProbeStatus};
use crate::knowledge::derive::{Derived, MatrixRow};
use crate::rules::{Finding, Severity};
use owo_colors::{OwoColorize, Stream};
use std::fmt::Write;

/// A report section: its category id, the probe that feeds it, and how to summarise it.
struct Section {
    category: &'static str,
    probe: &'static str,
    /// From the facts and what judging derived from them (never judged again here).
    headline: fn(&Facts, &Derived) -> String,
    details: fn(&Facts, &Derived) -> Vec<String>,
    /// Whether there is anything to judge; a section without it shows `[-]`, not `[✓]`.
    present: fn(&Facts) -> bool,
}

const SECTIONS: &[Section] = &[
    Section {
        category: "host",
        probe: "host",
        headline: |f, _| host_line(f),
        details: |_, _| Vec::new(),
        present: |_| true,
    },
    Section {
        category: "driver",
        probe: "driver",
        headline: |f, _| driver_line(f),
        details: |_, _| Vec::new(),
        present: |f| f.driver.library_found,
    },
    Section {
        category: "gpu",
        probe: "driver",
        headline: |f, _| gpus_line(f),
        details: gpu_details,
        present: |f| !f.driver.gpus.is_empty() || !f.host.pci_gpus.is_empty(),
    },
    Section {
        category: "cuda",
        probe: "cuda",
        headline: |f, _| cuda_line(f),
        details: |f, _| cuda_details(f),
        present: |f| f.cuda.library_found,
    },
    Section {
        category: "toolkit",
        probe: "toolkits",
        headline: |f, _| toolkit_line(f),
        details: |f, _| toolkit_details(f),
        present: |f| !f.toolkits.installs.is_empty(),
    },
    Section {
        category: "python",
        probe: "python",
        headline: |_, d| python_line(&d.python.matrix),
        details: |f, d| python_matrix(f, &d.python.matrix),
        present: |f| !f.python.environments.is_empty(),
    },
    Section {
        category: "llama",
        probe: "offload",
        headline: |f, _| offload_line(f),
        details: |f, _| f.offload.stack_lines(),
        present: |f| !f.offload.stacks.is_empty(),
    },
];

#[derive(Clone, Copy)]
struct Glyphs {
    ok: &'static str,
    warn: &'static str,
    error: &'static str,
    crash: &'static str,
    skipped: &'static str,
    bullet: &'static str,
    error_mark: &'static str,
    fix: &'static str,
    /// Marks a finding shown under the finding that causes it.
    consequence: &'static str,
}

const UNICODE: Glyphs = Glyphs {
    ok: "[✓]",
    warn: "[!]",
    error: "[✗]",
    crash: "[☠]",
    skipped: "[-]",
    bullet: "•",
    error_mark: "✗",
    fix: "$",
    consequence: "↳",
};
const ASCII: Glyphs = Glyphs {
    ok: "[+]",
    warn: "[!]",
    error: "[x]",
    crash: "[*]",
    skipped: "[-]",
    bullet: "*",
    error_mark: "x",
    fix: "$",
    consequence: "->",
};

pub fn render(input: &ReportInput) -> String {
    let glyphs = if utf8_locale() { UNICODE } else { ASCII };
    let facts = input.facts;
    let powershell = super::machine_shell(input) == crate::fix::Shell::PowerShell;
    let mut out = String::new();
    if !input.verbose {
        out.push_str("gpu-doctor summary (to see evidence and timings, run gpu-doctor -v):\n");
    }
    let mut categories_with_issues = 0;
    for section in SECTIONS {
        let findings: Vec<&Finding> = input
            .findings
            .iter()
            .filter(|f| section_of(f) == section.category)
            .collect();
        // Consequences are listed under their cause, wherever it is; the section they belong
        // to still shows that something is wrong in it, and points there.
        let caused: Vec<(&Finding, &Finding)> = input
            .findings
            .iter()
            .flat_map(|cause| cause.consequences.iter().map(move |c| (c, cause)))
            .filter(|(c, cause)| {
                section_of(c) == section.category && section_of(cause) != section.category
            })
            .collect();
        let mut shown = findings.clone();
        shown.extend(caused.iter().map(|(c, _)| *c));
        let outcome = facts.probes.get(section.probe);
        let present = (section.present)(facts);
        let mut line = format!(
            "{} {}",
            status_box(outcome, present, &shown, glyphs),
            visible(&(section.headline)(facts, input.derived))
        );
        if input.verbose {
            if let Some(o) = outcome.filter(|o| o.status != ProbeStatus::Skipped) {
                let _ = write!(line, " [{}]", format_ms(o.duration_ms));
            }
        }
        out.push_str(&line);
        out.push('\n');
        for detail in (section.details)(facts, input.derived) {
            // Table rows (the environment matrix) carry their own layout: no bullet.
            match detail.strip_prefix(TABLE_ROW) {
                Some(row) => {
                    let _ = writeln!(out, "      {}", visible(row));
                }
                None => {
                    let _ = writeln!(out, "    {} {}", glyphs.bullet, visible(&detail));
                }
            }
        }
        for f in &findings {
            write_finding(&mut out, f, glyphs, powershell, input.verbose);
        }
        for (c, cause) in &caused {
            let text = format!("{} (caused by: {})", c.title, cause.title);
            for (i, part) in wrap(&text, WRAP_WIDTH).into_iter().enumerate() {
                let lead = if i == 0 { glyphs.consequence } else { " " };
                let _ = writeln!(out, "    {lead} {part}");
            }
        }
        for w in input.waived {
            if section_of(&w.finding) == section.category {
                write_waived(&mut out, w);
            }
        }
        if findings.iter().any(|f| f.severity >= Severity::Warn) {
            categories_with_issues += 1;
        }
    }
    // Not under a section: an override may silence any of them.
    let overrides = super::overrides(input.rules);
    if !overrides.is_empty() {
        out.push('\n');
    }
    for o in overrides {
        let _ = writeln!(out, "~ {}", visible(&o.text()));
    }
    out.push('\n');
    out.push_str(&summary_line(input, categories_with_issues, glyphs));
    out
}

/// The report section a finding belongs in: its category, except that probe findings go under
/// the section their probe feeds.
fn section_of(f: &Finding) -> &str {
    if f.category != "probe" {
        return f.category.as_str();
    }
    let probe = f
        .subject
        .as_deref()
        .and_then(|s| s.strip_prefix("probe "))
        .unwrap_or("");
    SECTIONS
        .iter()
        .find(|s| s.probe == probe)
        .map(|s| s.category)
        .unwrap_or("host")
}

fn status_box(
    outcome: Option<&ProbeOutcome>,
    present: bool,
    findings: &[&Finding],
    g: Glyphs,
) -> String {
    let worst = findings.iter().map(|f| f.severity).max();
    let crashed =
        outcome.is_some_and(|o| matches!(o.status, ProbeStatus::Crashed | ProbeStatus::TimedOut));
    if crashed {
        return paint(g.crash, Severity::Error);
    }
    match worst {
        Some(Severity::Error) => paint(g.error, Severity::Error),
        Some(Severity::Warn) => paint(g.warn, Severity::Warn),
        _ if !present || outcome.is_none_or(|o| o.status == ProbeStatus::Skipped) => {
            g.skipped.to_string()
        }
        _ => paint(g.ok, Severity::Info),
    }
}

fn write_finding(out: &mut String, f: &Finding, g: Glyphs, powershell: bool, verbose: bool) {
    let mark = match f.severity {
        Severity::Error => paint(g.error_mark, Severity::Error),
        Severity::Warn => paint("!", Severity::Warn),
        Severity::Info => g.bullet.to_string(),
    };
    let _ = writeln!(out, "    {mark} {}", visible(&f.title));
    for line in f
        .explain
        .split('\n')
        .flat_map(|l| wrap(&visible(l), WRAP_WIDTH))
    {
        let _ = writeln!(out, "      {line}");
    }
    if verbose {
        for e in &f.evidence {
            let _ = writeln!(out, "      evidence: {}", visible(e));
        }
        let _ = writeln!(
            out,
            "      rule: {} (gpu-doctor explain {})",
            f.rule, f.rule
        );
    }
    let Some(fix) = &f.fix else {
        write_consequences(out, f, g);
        return;
    };
    // Only this machine's shell: a Linux command shown on Windows would mislead.
    let (own, other, other_name) = if powershell {
        (fix.powershell.as_deref(), fix.bash.as_deref(), "bash")
    } else {
        (fix.bash.as_deref(), fix.powershell.as_deref(), "PowerShell")
    };
    if let Some(cmd) = own {
        for line in cmd.split('\n') {
            let _ = writeln!(
                out,
                "      {} {}",
                g.fix,
                visible(line).if_supports_color(Stream::Stdout, |t| t.bold())
            );
        }
    }
    if let (true, Some(other)) = (verbose, other) {
        let _ = writeln!(out, "      ({other_name}: {})", visible(other));
    }
    write_consequences(out, f, g);
}

/// The findings a finding causes, under it: shown, not counted again.
fn write_consequences(out: &mut String, f: &Finding, g: Glyphs) {
    let lines = super::consequence_lines(f);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "      {}", super::CONSEQUENCES_HEADING);
    for line in lines {
        for (i, part) in wrap(&line, WRAP_WIDTH - 4).into_iter().enumerate() {
            let lead = if i == 0 { g.consequence } else { "  " };
            let _ = writeln!(out, "      {lead} {part}");
        }
    }
}

/// A waived finding: its title, and the waiver's reason, expiry and place. It does not count.
fn write_waived(out: &mut String, w: &super::Waived) {
    let _ = writeln!(
        out,
        "    ~ waived until {}: {}",
        w.waiver.expires,
        visible(&w.finding.title)
    );
    let owner = w
        .waiver
        .owner
        .as_deref()
        .map(|o| format!(", {o}"))
        .unwrap_or_default();
    let reason = format!("reason: {} ({}{owner})", w.waiver.reason, w.waiver.source);
    for line in wrap(&visible(&reason), WRAP_WIDTH) {
        let _ = writeln!(out, "      {line}");
    }
}

/// Marks a detail line as a row of a table, printed without a bullet.
const TABLE_ROW: &str = "\u{0}table:";

/// Explanations are wrapped to this many characters (after their 6-space indent).
const WRAP_WIDTH: usize = 92;

/// Split `text` into lines of at most `width` characters at spaces (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn summary_line(input: &ReportInput, categories: usize, g: Glyphs) -> String {
    let line = verdict_line(input, categories, g);
    let v = input.verdict;
    if v.waived == 0 {
        return line;
    }
    let by = visible(input.config.unwrap_or("the configuration"));
    format!(
        "{} ({} waived by {by})\n",
        line.trim_end(),
        if v.waived == 1 {
            "1 finding".to_string()
        } else {
            format!("{} findings", v.waived)
        }
    )
}

fn verdict_line(input: &ReportInput, categories: usize, g: Glyphs) -> String {
    let v = input.verdict;
    if v.errors == 0 && v.warnings == 0 {
        let verdict = if v.ready {
            "ready for GPU work"
        } else {
            "not ready"
        };
        return format!("{} No issues found: {verdict}.\n", g.bullet);
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let verdict = if v.ready {
        "Ready (below the fail level)"
    } else {
        "Not ready"
    };
    format!(
        "! gpu-doctor found {} and {} in {}. {verdict}.\n",
        plural(v.errors, "error"),
        plural(v.warnings, "warning"),
        plural(categories, "category").replace("categorys", "categories"),
    )
}

fn paint(text: &str, severity: Severity) -> String {
    match severity {
        Severity::Error => text
            .if_supports_color(Stream::Stdout, |t| t.red())
            .to_string(),
        Severity::Warn => text
            .if_supports_color(Stream::Stdout, |t| t.yellow())
            .to_string(),
        Severity::Info => text
            .if_supports_color(Stream::Stdout, |t| t.green())
            .to_string(),
    }
}

fn utf8_locale() -> bool {
    for var in ["LC_ALL", "LC_CTYPE", "LANG"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let v = v.to_string_lossy().to_ascii_lowercase();
            return v.contains("utf-8") || v.contains("utf8");
        }
    }
    // No locale set: modern terminals are UTF-8; Windows consoles render these glyphs too.
    true
}

fn format_ms(ms: f64) -> String {
    if ms < 2000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn gib(mib: u64) -> String {
    format!("{:.0} GiB", mib as f64 / 1024.0)
}

// --- headlines -------------------------------------------------------------------------------

fn host_line(f: &Facts) -> String {
    let h = &f.host;
    let os = h.os_release.clone().unwrap_or_else(|| h.os.clone());
    let simd = if h.cpu.avx512f {
        ", AVX-512"
    } else if h.cpu.avx2 {
        ", AVX2"
    } else if h.cpu.neon {
        ", NEON"
    } else {
        ""
    };
    let wsl = if h.wsl2 { " (WSL2)" } else { "" };
    format!(
        "Host: {os}{wsl}, {}, {} CPUs{simd}, {} RAM",
        h.arch,
        h.cpu.logical_cores,
        gib(h.memory.total_mib)
    )
}

fn driver_line(f: &Facts) -> String {
    let d = &f.driver;
    match (&d.version, d.library_found) {
        (Some(v), _) => {
            let cuda = d
                .cuda_version
                .as_deref()
                .map(|c| format!(", supports CUDA ≤ {c}"))
                .unwrap_or_default();
            let flavor = d
                .kernel_module
                .flavor
                .as_deref()
                .map(|k| format!(", {k} kernel module"))
                .unwrap_or_default();
            format!("NVIDIA driver {v}{cuda}{flavor}")
        }
        (None, true) if f.profile == "quick" => {
            let v = d
                .kernel_module
                .version
                .as_deref()
                .map(|v| format!(", kernel module {v}"))
                .unwrap_or_default();
            format!(
                "NVIDIA driver: {} found{v} (the quick profile does not load it)",
                d.library
            )
        }
        (None, true) => format!("NVIDIA driver: {} found but not usable", d.library),
        (None, false) => "NVIDIA driver: not found".to_string(),
    }
}

fn gpus_line(f: &Facts) -> String {
    let on_bus = f.host.pci_gpus.len();
    let plural = if on_bus == 1 { "" } else { "s" };
    match f.driver.gpus.len() {
        0 if on_bus > 0 && f.profile == "quick" => {
            format!("GPUs: {on_bus} NVIDIA GPU{plural} on the PCI bus (the quick profile does not query them)")
        }
        0 if on_bus > 0 => format!(
            "GPUs: {on_bus} NVIDIA GPU{plural} on the PCI bus, none usable through the driver"
        ),
        0 => "GPUs: none found".to_string(),
        1 => "GPUs: 1 NVIDIA GPU".to_string(),
        n => format!("GPUs: {n} NVIDIA GPUs"),
    }
}

fn gpu_details(f: &Facts, derived: &Derived) -> Vec<String> {
    let views = crate::knowledge::derive::gpu_views(f, derived);
    // Under CUDA_VISIBLE_DEVICES the physical index and the CUDA ordinal differ: say both,
    // with the UUID, which is the one name every tool agrees on.
    let masked = f.host.env.cuda_visible_devices.is_some();
    views
        .iter()
        .map(|v| {
            let g = &v.gpu;
            let mut line = format!(
                "GPU {}: {}, compute capability {} ({}), {} ({:.0}% used)",
                g.index,
                g.name,
                g.compute_capability,
                g.architecture,
                gib(g.memory.total_mib),
                g.memory.used_percent
            );
            if masked {
                let seen = match v.cuda_ordinal {
                    Some(n) if v.cuda_visible => {
                        format!("CUDA device {n} under CUDA_VISIBLE_DEVICES")
                    }
                    _ => "hidden by CUDA_VISIBLE_DEVICES".to_string(),
                };
                let _ = write!(line, "; {seen} ({})", g.uuid);
            }
            line
        })
        .collect()
}

fn cuda_line(f: &Facts) -> String {
    let c = &f.cuda;
    let skipped = f
        .probes
        .get("cuda")
        .is_none_or(|o| o.status == ProbeStatus::Skipped);
    if skipped {
        let found = if c.library_found {
            "libcuda found, "
        } else {
            ""
        };
        return format!(
            "CUDA driver API: {found}not initialised in the {} profile",
            f.profile
        );
    }
    if !c.library_found {
        return "CUDA driver API: libcuda not found".to_string();
    }
    let version = c
        .driver_api_version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    match c.init_result.as_deref() {
        Some("CUDA_SUCCESS") => {
            let n = c.device_count;
            format!(
                "CUDA driver API{version}: {n} device{}",
                if n == 1 { "" } else { "s" }
            )
        }
        Some(err) => format!("CUDA driver API{version}: cuInit failed with {err}"),
        None => format!("CUDA driver API{version}: not initialised"),
    }
}

fn cuda_details(f: &Facts) -> Vec<String> {
    f.cuda.devices.iter().map(cuda_device_line).collect()
}

fn cuda_device_line(d: &crate::facts::CudaDevice) -> String {
    let context = if d.context_ok {
        "context OK".to_string()
    } else {
        "no context".to_string()
    };
    let kernel = match &d.kernel {
        None => String::new(),
        Some(k) if k.verified => {
            let mut s = format!(
                ", kernel verified ({} Mi elements",
                k.elements / (1024 * 1024)
            );
            if let Some(ms) = k.kernel_ms {
                let _ = write!(s, " in {ms:.2} ms");
            }
            s.push(')');
            if let (Some(h2d), Some(d2h)) = (k.h2d_gb_per_s, k.d2h_gb_per_s) {
                let _ = write!(s, ", host→device {h2d:.1} GB/s, device→host {d2h:.1} GB/s");
            }
            s
        }
        Some(k) => format!(
            ", kernel FAILED: {}",
            k.error.as_deref().unwrap_or("result did not verify")
        ),
    };
    format!("CUDA device {}: {}, {context}{kernel}", d.ordinal, d.name)
}

fn toolkit_line(f: &Facts) -> String {
    let t = &f.toolkits;
    match t.installs.len() {
        0 => "CUDA toolkit: none found (only needed to build CUDA code)".to_string(),
        1 => {
            let k = &t.installs[0];
            format!(
                "CUDA toolkit {} at {}",
                k.version.as_deref().unwrap_or("(version unknown)"),
                k.root
            )
        }
        n => format!("CUDA toolkits: {n} installed"),
    }
}

fn toolkit_details(f: &Facts) -> Vec<String> {
    if f.toolkits.installs.len() < 2 {
        return Vec::new();
    }
    f.toolkits
        .installs
        .iter()
        .map(|k| {
            let by = if k.found_by.is_empty() {
                String::new()
            } else {
                format!(" (via {})", k.found_by.join(", "))
            };
            format!(
                "{} at {}{by}",
                k.version.as_deref().unwrap_or("version unknown"),
                k.root
            )
        })
        .collect()
}

// --- python -----------------------------------------------------------------------------------

fn python_line(rows: &[MatrixRow]) -> String {
    if rows.is_empty() {
        return "Python environments: none found in this project".to_string();
    }
    let ready = rows.iter().filter(|r| r.verdict == "ready").count();
    let n = rows.len();
    format!("Python environments: {n} found, {ready} ready for GPU work")
}

/// The environment matrix the seed's author had to assemble by hand: one row per environment,
/// with the verdict judging gave it.
fn python_matrix(f: &Facts, rows: &[MatrixRow]) -> Vec<String> {
    if rows.is_empty() {
        return Vec::new();
    }
    let header = [
        "environment",
        "python",
        "torch",
        "torch on GPU",
        "llama.cpp GPU",
        "verdict",
        "used by",
    ];
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.env.clone(),
                r.python.clone(),
                r.torch.clone(),
                r.cuda_usable.clone(),
                r.llama.clone(),
                r.verdict.clone(),
                if r.used_by.is_empty() {
                    "—".to_string()
                } else {
                    r.used_by.join(", ")
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("{TABLE_ROW}{}", padded.join("  ").trim_end())
    };
    let mut out = vec![line(&header.map(String::from))];
    out.extend(table.iter().map(|r| line(r)));
    out.extend(cached_answers_line(f));
    out
}

/// Which environments' answers the quick profile took from the cache, and how old they are,
/// so that a pre-commit failure quoting an old `import torch` error says where it came from.
fn cached_answers_line(f: &Facts) -> Option<String> {
    let cached: Vec<(&str, u64)> = f
        .python
        .environments
        .iter()
        .filter_map(|e| Some((e.name.as_str(), e.live.as_ref()?.cached.as_ref()?.age_s)))
        .collect();
    let oldest = cached.iter().map(|(_, age)| *age).max()?;
    let names: Vec<&str> = cached.iter().map(|(name, _)| *name).collect();
    Some(format!(
        "answers of {} from the cache of an earlier check ({} old at most; `gpu-doctor check` asks again)",
        names.join(", "),
        age_words(oldest)
    ))
}

/// "45 s", "12 min", "3 h", "2 days".
fn age_words(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

// --- llama.cpp offload ----------------------------------------------------------------------

fn offload_line(f: &Facts) -> String {
    let skipped = f
        .probes
        .get("offload")
        .is_none_or(|o| o.status == ProbeStatus::Skipped);
    if skipped {
        return format!(
            "llama.cpp offload: not proved in the {} profile (gpu-doctor check --profile full)",
            f.profile
        );
    }
    f.offload.headline()
}

#[cfg(test)]
mod tests {
    use super::{age_words, cached_answers_line, wrap};
    use crate::facts::python::{LiveCached, LiveProbe, PythonEnv};
    use crate::facts::Facts;

    #[test]
    fn cached_answers_are_named_with_the_oldest_age() {
        let mut facts = Facts::default();
        assert_eq!(cached_answers_line(&facts), None);
        for (name, age) in [
            (".venv", Some(30)),
            (".venv310", None),
            (".venv-gpu", Some(900)),
        ] {
            let live = LiveProbe {
                cached: age.map(|age_s| LiveCached {
                    stored_at_unix: 0,
                    age_s,
                }),
                ..LiveProbe::default()
            };
            facts.python.environments.push(PythonEnv {
                name: name.to_string(),
                live: Some(live),
                ..PythonEnv::default()
            });
        }
        let line = cached_answers_line(&facts).unwrap();
        assert!(
            line.starts_with("answers of .venv, .venv-gpu from the cache"),
            "{line}"
        );
        assert!(line.contains("(15 min old at most;"), "{line}");
        assert_eq!(age_words(119), "119 s");
        assert_eq!(age_words(7199), "119 min");
        assert_eq!(age_words(7200), "2 h");
        assert_eq!(age_words(3 * 86400), "3 days");
    }

    #[test]
    fn wraps_at_spaces_and_keeps_long_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("/a/very/long/path x", 5), ["/a/very/long/path", "x"]);
        assert!(wrap("", 10).is_empty());
    }
}
