//! Runs the probes of a profile together, each under its own deadline, and assembles Facts.
//!
//! Every probe runs on its own thread inside `catch_unwind`. The runner waits for each one
//! until its deadline; a probe that panics is recorded as `crashed` with the panic message, one
//! that overruns as `timed_out`, and the run goes on either way. A timed-out thread is left
//! behind (threads cannot be killed); probes that may truly hang do their risky work in a child
//! process ([`super::process`]) so that nothing is left running when the doctor exits.

use super::{cuda, driver, host, llama, process, python, toolkit, ProbeContext, Probed, Profile};
use crate::facts::{Facts, ProbeOutcome, ProbeStatus};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// One section's worth of facts, as returned by a probe.
enum Section {
    Host(Probed<crate::facts::HostFacts>),
    Driver(Probed<crate::facts::DriverFacts>),
    Cuda(Probed<crate::facts::CudaFacts>),
    Toolkits(Probed<crate::facts::ToolkitFacts>),
    Python(Probed<crate::facts::python::PythonFacts>),
    Offload(Probed<crate::facts::llama::OffloadFacts>),
}

type ProbeFn = fn(&ProbeContext) -> Section;

/// A probe known to the runner: its name (the key in `Facts.probes`), the profiles it runs in,
/// its deadline there, and the function.
struct ProbeSpec {
    name: &'static str,
    runs_in: fn(Profile) -> bool,
    deadline: fn(Profile) -> Duration,
    run: ProbeFn,
}

/// The registry, in the order reports show them.
const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        name: "host",
        runs_in: |_| true,
        deadline: |_| Duration::from_secs(2),
        run: |ctx| Section::Host(host::probe(ctx)),
    },
    ProbeSpec {
        name: "driver",
        runs_in: |_| true,
        deadline: |p| match p {
            Profile::Quick => Duration::from_secs(1),
            _ => Duration::from_secs(10),
        },
        run: |ctx| Section::Driver(driver::probe(ctx)),
    },
    ProbeSpec {
        name: "cuda",
        runs_in: |p| p >= Profile::Standard,
        // Scaled, like every deadline of foreign code that may hang for long, only by the
        // tests' GPU_DOCTOR_TEST_DEADLINE_SCALE (process::scaled).
        deadline: |p| {
            process::scaled(match p {
                Profile::Full => Duration::from_secs(60),
                _ => Duration::from_secs(20),
            })
        },
        run: |ctx| Section::Cuda(cuda::probe(ctx)),
    },
    ProbeSpec {
        name: "toolkits",
        runs_in: |_| true,
        deadline: |_| Duration::from_secs(10),
        run: |ctx| Section::Toolkits(toolkit::probe(ctx)),
    },
    ProbeSpec {
        name: "python",
        runs_in: |_| true,
        // Each environment's own interpreter imports torch in the standard profile: 4-6 s on
        // the H100 machine, more on a cold disk. The live tier bounds each one at 40 s.
        deadline: |p| match p {
            Profile::Quick => Duration::from_secs(5),
            _ => process::scaled(Duration::from_secs(60)),
        },
        // Marked in flight so that the offload proof times its GPU-against-CPU workload after
        // it, not against the interpreters' imports.
        run: |ctx| Section::Python(llama::while_python_runs(|| python::probe(ctx))),
    },
    ProbeSpec {
        name: "offload",
        // The llama.cpp offload proof reads the environments itself (the Python probe's static
        // tier, milliseconds), so it starts with the others; its stacks that may use a GPU wait
        // for the Python probe to end. Its stacks are bounded by llama::TOTAL_BUDGET; the
        // deadline leaves a margin above that.
        runs_in: |p| p == Profile::Full,
        deadline: |_| process::scaled(llama::TOTAL_BUDGET + Duration::from_secs(20)),
        run: |ctx| Section::Offload(llama::probe(ctx)),
    },
];

/// Names of all probes, in report order.
pub fn probe_names() -> Vec<&'static str> {
    PROBES.iter().map(|p| p.name).collect()
}

/// Probe with every probe of the context's profile and return the Facts.
pub fn collect(ctx: &ProbeContext) -> Facts {
    let mut facts = Facts::empty(ctx.profile.as_str());
    facts.collected_at_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let started: Vec<_> = PROBES
        .iter()
        .map(|spec| {
            let wanted = (spec.runs_in)(ctx.profile);
            let deadline = (spec.deadline)(ctx.profile);
            let rx = wanted.then(|| start(spec.run, ctx.clone()));
            (spec, deadline, rx)
        })
        .collect();

    let begin = Instant::now();
    for (spec, deadline, rx) in started {
        let outcome = match rx {
            None => ProbeOutcome {
                status: ProbeStatus::Skipped,
                ..Default::default()
            },
            Some(rx) => {
                let left = (begin + deadline).saturating_duration_since(Instant::now());
                let (outcome, section) = finish(rx, left, deadline);
                if let Some(section) = section {
                    store(&mut facts, section);
                }
                outcome
            }
        };
        facts.probes.insert(spec.name.to_string(), outcome);
    }
    facts
}

type Report = (Result<Section, String>, Duration);

fn start(run: ProbeFn, ctx: ProbeContext) -> mpsc::Receiver<Report> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let t0 = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| run(&ctx))).map_err(panic_message);
        let _ = tx.send((result, t0.elapsed()));
    });
    rx
}

/// Wait for one probe and turn what happened into its outcome and (maybe) its section.
fn finish(
    rx: mpsc::Receiver<Report>,
    left: Duration,
    deadline: Duration,
) -> (ProbeOutcome, Option<Section>) {
    let deadline_ms = deadline.as_millis() as u64;
    match rx.recv_timeout(left) {
        Ok((Ok(section), took)) => {
            let (status, error) = status_of(&section);
            let outcome = ProbeOutcome {
                status,
                error,
                duration_ms: ms(took),
                deadline_ms,
            };
            (outcome, Some(section))
        }
        Ok((Err(panic), took)) => {
            let outcome = ProbeOutcome {
                status: ProbeStatus::Crashed,
                error: Some(format!("the probe panicked: {panic}")),
                duration_ms: ms(took),
                deadline_ms,
            };
            (outcome, None)
        }
        Err(_) => {
            let outcome = ProbeOutcome {
                status: ProbeStatus::TimedOut,
                error: Some(format!(
                    "no answer within its deadline of {:.1} s",
                    deadline.as_secs_f64()
                )),
                duration_ms: ms(deadline),
                deadline_ms,
            };
            (outcome, None)
        }
    }
}

fn status_of(section: &Section) -> (ProbeStatus, Option<String>) {
    match section {
        Section::Host(p) => (p.status, p.error.clone()),
        Section::Driver(p) => (p.status, p.error.clone()),
        Section::Cuda(p) => (p.status, p.error.clone()),
        Section::Toolkits(p) => (p.status, p.error.clone()),
        Section::Python(p) => (p.status, p.error.clone()),
        Section::Offload(p) => (p.status, p.error.clone()),
    }
}

fn store(facts: &mut Facts, section: Section) {
    match section {
        Section::Host(p) => facts.host = p.data,
        Section::Driver(p) => facts.driver = p.data,
        Section::Cuda(p) => facts.cuda = p.data,
        Section::Toolkits(p) => facts.toolkits = p.data,
        Section::Python(p) => facts.python = p.data,
        Section::Offload(p) => facts.offload = p.data,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The text of a panic payload (a &str or String), or a placeholder.
pub fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ProbeContext {
        ProbeContext::from_process(Profile::Quick)
    }

    #[test]
    fn a_panicking_probe_is_recorded_as_crashed_with_its_message() {
        let rx = start(|_| panic!("NVML exploded"), ctx());
        let (outcome, section) = finish(rx, Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(outcome.status, ProbeStatus::Crashed);
        assert!(outcome.error.unwrap().contains("NVML exploded"));
        assert!(section.is_none());
    }

    #[test]
    fn a_probe_that_overruns_its_deadline_is_timed_out_and_the_wait_is_bounded() {
        let rx = start(
            |_| {
                thread::sleep(Duration::from_secs(30));
                Section::Toolkits(Probed::ok(Default::default()))
            },
            ctx(),
        );
        let t0 = Instant::now();
        let (outcome, section) = finish(rx, Duration::from_millis(100), Duration::from_millis(100));
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(outcome.status, ProbeStatus::TimedOut);
        assert_eq!(outcome.deadline_ms, 100);
        assert!(section.is_none());
    }

    #[test]
    fn a_finished_probe_keeps_its_own_status_and_duration() {
        let rx = start(
            |_| Section::Cuda(Probed::absent(Default::default(), "libcuda.so.1 not found")),
            ctx(),
        );
        let (outcome, section) = finish(rx, Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(outcome.status, ProbeStatus::Absent);
        assert_eq!(outcome.error.as_deref(), Some("libcuda.so.1 not found"));
        assert!(outcome.duration_ms >= 0.0);
        assert!(section.is_some());
    }
}
