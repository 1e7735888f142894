//! `gpu-doctor slurm-healthcheck` against a real one-node Slurm cluster on 127.0.0.1: Debian's
//! munged, slurmctld and slurmd (packages munge, slurmctld, slurmd, slurm-client), started in
//! a temporary folder as the user running the tests (tests/support/slurm/slurm.conf.in), and
//! stopped by process group when the test ends, whatever happens.
//!
//! A recorded failing machine drains the node with gpu-doctor's reason, a recorded passing one
//! resumes it; a node an administrator drained is neither resumed nor re-labelled; and slurmd
//! itself, running docs/examples/slurm-healthcheck.sh as its HealthCheckProgram, drains and
//! resumes the node. The results are read with sinfo, not with gpu-doctor's own parser.
//!
//! Without the Slurm programs the tests are skipped with a loud message, unless
//! GPU_DOCTOR_REQUIRE_SLURM=1 (set by `make test` and `make test-slurm`, whose deps install
//! them), which turns the skip into a failure.

use gpu_doctor::probe::process;
use std::cell::RefCell;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const FAILING: &str = "fixtures/facts/seed-laptop.json";
const PASSING: &str = "fixtures/facts/h100.json";
/// How long the cluster may take to reach a state (it takes 1-3 s on the development machine).
const STATE_DEADLINE: Duration = Duration::from_secs(60);

fn fixture(rel: &str) -> String {
    format!("{ROOT}/{rel}")
}

/// A program from PATH or the sbin folders, where Debian puts the daemons.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Slurm and MUNGE programs, or None (after saying so) when this machine lacks one.
fn programs() -> Option<Programs> {
    let found = Programs {
        munged: program("munged"),
        mungekey: program("mungekey"),
        slurmctld: program("slurmctld"),
        slurmd: program("slurmd"),
        scontrol: program("scontrol"),
        sinfo: program("sinfo"),
        sbatch: program("sbatch"),
        squeue: program("squeue"),
    };
    let missing = found.missing();
    if missing.is_empty() {
        return Some(found);
    }
    let msg = format!(
        "the Slurm tests need {} (apt-get install munge slurmctld slurmd slurm-client; `make test-slurm` does it)",
        missing.join(", ")
    );
    if std::env::var_os("GPU_DOCTOR_REQUIRE_SLURM").is_some_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    None
}

struct Programs {
    munged: Option<PathBuf>,
    mungekey: Option<PathBuf>,
    slurmctld: Option<PathBuf>,
    slurmd: Option<PathBuf>,
    scontrol: Option<PathBuf>,
    sinfo: Option<PathBuf>,
    sbatch: Option<PathBuf>,
    squeue: Option<PathBuf>,
}

impl Programs {
    fn missing(&self) -> Vec<&'static str> {
        [
            ("munged", &self.munged),
            ("mungekey", &self.mungekey),
            ("slurmctld", &self.slurmctld),
            ("slurmd", &self.slurmd),
            ("scontrol", &self.scontrol),
            ("sinfo", &self.sinfo),
            ("sbatch", &self.sbatch),
            ("squeue", &self.squeue),
        ]
        .into_iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| n)
        .collect()
    }

    fn get(p: &Option<PathBuf>) -> &Path {
        p.as_deref().expect("checked by programs()")
    }
}

/// Run a command under a deadline; its stdout, or a panic with what it said.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = process::run(cmd, Duration::from_secs(30), 1 << 20)
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.success(),
        "{what} failed ({}): {}{}",
        out.describe_end(),
        out.stdout_text(),
        out.stderr_text()
    );
    out.stdout_text()
}

/// A free TCP port on 127.0.0.1, never the same twice in this process (the tests start their
/// clusters in parallel, and a port is free only until someone binds it).
fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A node's state and reason as `sinfo -N -o '%T|%E'` prints them: `drained|gpu-doctor: ...`.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    reason: String,
}

/// munged, slurmctld and slurmd in a temporary folder; all stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    node: String,
    programs: Programs,
    /// (name, child); each child leads its own process group.
    daemons: RefCell<Vec<(&'static str, Child)>>,
}

/// A script of docs/examples that slurmd runs, made to judge a facts file with the binary
/// under test (and to find this cluster's slurm.conf).
struct Hook {
    /// The file in docs/examples.
    example: &'static str,
    /// slurm.conf lines; `@SCRIPT@` is the script's path.
    conf: &'static str,
    /// The facts the script judges; the test replaces the file to change the verdict.
    facts: PathBuf,
}

impl Cluster {
    fn start(hook: Option<&Hook>) -> Option<Cluster> {
        let programs = programs()?;
        let dir = tempfile::tempdir().unwrap();
        // munged wants every folder above its socket searchable by all, and none writable by
        // others; tempdir makes 0700.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["munge", "state", "spool"] {
            fs::create_dir(d.join(sub)).unwrap();
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let node = run(Command::new("hostname").arg("-s"), "hostname -s")
            .trim()
            .to_string();
        let user = run(Command::new("id").arg("-un"), "id -un")
            .trim()
            .to_string();
        let hook_lines = hook.map(|h| hook_lines(&d, h)).unwrap_or_default();
        let conf = d.join("slurm.conf");
        let template = fs::read_to_string(format!("{ROOT}/tests/support/slurm/slurm.conf.in"))
            .expect("tests/support/slurm/slurm.conf.in");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let text = template
            .replace("@DIR@", &d.display().to_string())
            .replace("@NODE@", &node)
            .replace("@USER@", &user)
            .replace("@CTLD_PORT@", &free_port().to_string())
            .replace("@SLURMD_PORT@", &free_port().to_string())
            .replace("@CPUS@", &cpus.to_string())
            .replace("@HOOK@", &hook_lines);
        fs::write(&conf, text).unwrap();
        let cluster = Cluster {
            dir,
            conf,
            node,
            programs,
            daemons: RefCell::new(Vec::new()),
        };
        cluster.start_munge();
        cluster.start_daemon("slurmctld");
        cluster.start_daemon("slurmd");
        Some(cluster)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start_munge(&self) {
        let d = self.dir().to_path_buf();
        let key = d.join("munge/munge.key");
        run(
            Command::new(Programs::get(&self.programs.mungekey))
                .arg("--create")
                .arg(format!("--keyfile={}", key.display())),
            "mungekey --create",
        );
        let mut cmd = Command::new(Programs::get(&self.programs.munged));
        cmd.arg("--foreground")
            .arg(format!("--socket={}/munge/munge.socket", d.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}/munge/munged.pid", d.display()))
            .arg(format!("--log-file={}/munge/munged.log", d.display()))
            .arg(format!("--seed-file={}/munge/munged.seed", d.display()));
        self.spawn("munged", cmd);
        let socket = d.join("munge/munge.socket");
        self.wait_until("munged's socket", || socket.exists().then_some(()));
    }

    fn start_daemon(&self, name: &'static str) {
        let exe = match name {
            "slurmctld" => &self.programs.slurmctld,
            _ => &self.programs.slurmd,
        };
        let mut cmd = Command::new(Programs::get(exe));
        cmd.arg("-D").arg("-f").arg(&self.conf);
        self.spawn(name, cmd);
    }

    /// Start a daemon in its own process group, its output in DIR/NAME.out.
    fn spawn(&self, name: &'static str, mut cmd: Command) {
        let out = fs::File::create(self.dir().join(format!("{name}.out"))).unwrap();
        cmd.current_dir(self.dir())
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.borrow_mut().push((name, child));
    }

    /// Poll `probe` every 100 ms until it gives a value; panic with the daemons' logs after
    /// STATE_DEADLINE, or when a daemon has died.
    fn wait_until<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            for (name, child) in self.daemons.borrow_mut().iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{name} ended ({status}) while waiting for {what}");
                }
            }
            assert!(
                start.elapsed() < STATE_DEADLINE,
                "no {what} after {:?}\n{}",
                STATE_DEADLINE,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every daemon's log, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in [
            "slurmctld.log",
            "slurmd.log",
            "slurmctld.out",
            "slurmd.out",
            "munged.out",
        ] {
            let body = fs::read_to_string(self.dir().join(name)).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!("--- {name}\n{tail}\n"));
        }
        text
    }

    fn slurm(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(exe);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    /// The node as sinfo shows it, or None while the controller does not answer.
    fn seen(&self) -> Option<Seen> {
        let mut cmd = self.slurm(Programs::get(&self.programs.sinfo));
        cmd.args(["-h", "-N", "-n", &self.node, "-o", "%T|%E"]);
        let out = process::run(&mut cmd, Duration::from_secs(20), 1 << 16).ok()?;
        if !out.success() {
            return None;
        }
        let text = out.stdout_text();
        let (state, reason) = text.trim().split_once('|')?;
        Some(Seen {
            state: state.to_string(),
            reason: reason.to_string(),
        })
    }

    fn wait_for_state(&self, state: &str) -> Seen {
        let what = format!("node in state {state}");
        self.wait_until(&what, || self.seen().filter(|s| s.state == state))
    }

    fn scontrol(&self, args: &[&str]) -> String {
        let mut cmd = self.slurm(Programs::get(&self.programs.scontrol));
        cmd.args(args);
        run(&mut cmd, &format!("scontrol {}", args.join(" ")))
    }
}

impl Drop for Cluster {
    /// Stop the daemons newest first, each with its process group: SIGTERM, then SIGKILL when
    /// it has not ended within 10 s. Always reaped, so nothing is left behind.
    fn drop(&mut self) {
        while let Some((_, mut child)) = self.daemons.get_mut().pop() {
            let pgid = child.id() as i32;
            // SAFETY: kill(2) on a process group this test created; no memory is involved.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    // SAFETY: as above.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // A child of the daemon (slurmctld's slurmscriptd) may outlive it by a moment.
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// Write the hook's script into `dir` and return its slurm.conf lines. The example's
/// `/usr/local/bin/gpu-doctor slurm-healthcheck` line gets the binary under test and `--facts`;
/// a commented-out SLURM_CONF line is made to name this cluster's slurm.conf.
fn hook_lines(dir: &Path, h: &Hook) -> String {
    let example = fs::read_to_string(format!("{ROOT}/docs/examples/{}", h.example))
        .unwrap_or_else(|e| panic!("docs/examples/{}: {e}", h.example));
    let installed = "/usr/local/bin/gpu-doctor slurm-healthcheck";
    let conf_line = "# SLURM_CONF=/etc/slurm/slurm.conf; export SLURM_CONF";
    let mut script = String::new();
    let mut runs = 0;
    for line in example.lines() {
        if line.contains(installed) {
            runs += 1;
            script.push_str(&line.replace(
                "/usr/local/bin/gpu-doctor",
                &format!("'{}'", env!("CARGO_BIN_EXE_gpu-doctor")),
            ));
            script.push_str(&format!(" --facts '{}'", h.facts.display()));
        } else if line == conf_line {
            let conf = dir.join("slurm.conf");
            script.push_str(&format!(
                "SLURM_CONF='{}'; export SLURM_CONF",
                conf.display()
            ));
        } else {
            script.push_str(line);
        }
        script.push('\n');
    }
    assert_eq!(runs, 1, "{} should run `{installed}` once", h.example);
    let path = dir.join(h.example);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    h.conf.replace("@SCRIPT@", &path.display().to_string())
}

/// The facts file a hook judges, replaced atomically so that a run at that moment reads one
/// file or the other.
struct FactsFile {
    dir: tempfile::TempDir,
}

impl FactsFile {
    fn new(rel: &str) -> FactsFile {
        let f = FactsFile {
            dir: tempfile::tempdir().unwrap(),
        };
        f.set(rel);
        f
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("facts.json")
    }

    fn set(&self, rel: &str) {
        let tmp = self.dir.path().join("facts.json.tmp");
        fs::copy(fixture(rel), &tmp).unwrap();
        fs::rename(&tmp, self.path()).unwrap();
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `gpu-doctor slurm-healthcheck ARGS` as the cluster's node would run it: no --node (the host
/// name is the node name), scontrol from PATH, SLURM_CONF naming the cluster.
fn healthcheck(cluster: &Cluster, args: &[&str]) -> Out {
    let mut cmd = cluster.slurm(Path::new(env!("CARGO_BIN_EXE_gpu-doctor")));
    cmd.arg("slurm-healthcheck")
        .args(args)
        .env_remove("SLURMD_NODENAME")
        .env("GPU_DOCTOR_NO_CONFIG", "1");
    let out = process::run(&mut cmd, Duration::from_secs(60), 1 << 20).expect("run gpu-doctor");
    Out {
        code: out.code.unwrap_or(-1),
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

/// The line `gpu-doctor check --format line` prints for a facts file.
fn line_of(facts: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(["check", "--no-config", "--format", "line", "--facts", facts]);
    let out = process::run(&mut cmd, Duration::from_secs(60), 1 << 20).unwrap();
    out.stdout_text().trim_end().to_string()
}

#[test]
fn drains_on_failure_resumes_on_pass_and_never_resumes_an_admin_drain() {
    let Some(cluster) = Cluster::start(None) else {
        return;
    };
    let started = Instant::now();
    cluster.wait_for_state("idle");
    eprintln!("slurm: node idle {:?} after start", started.elapsed());
    let failing = fixture(FAILING);
    let passing = fixture(PASSING);
    let reason = format!("gpu-doctor: {}", line_of(&failing));
    let node = cluster.node.clone();

    // A failing check drains the node, with the reason rule id first.
    let out = healthcheck(&cluster, &["--facts", &failing]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!("gpu-doctor: drained {node}: {reason}\n")
    );
    let seen = cluster.wait_for_state("drained");
    assert_eq!(seen.reason, reason);
    assert!(reason.len() <= "gpu-doctor: ".len() + 80, "{reason}");

    // Failing again changes nothing.
    let out = healthcheck(&cluster, &["--facts", &failing]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("stays drained"), "{}", out.stdout);

    // A passing check resumes the node gpu-doctor drained.
    let out = healthcheck(&cluster, &["--facts", &passing]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("gpu-doctor: resumed {node}: ready")),
        "{}",
        out.stdout
    );
    let seen = cluster.wait_for_state("idle");
    assert_eq!(seen.reason, "none");

    // --dry-run says what it would do and does nothing.
    let out = healthcheck(&cluster, &["--facts", &failing, "--dry-run"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!("gpu-doctor: would drain {node}: {reason}\n")
    );
    assert_eq!(cluster.seen().unwrap().state, "idle");

    // An administrator's drain: a passing check does not resume it, a failing one does not
    // replace its reason.
    cluster.scontrol(&[
        "update",
        &format!("NodeName={node}"),
        "State=DRAIN",
        "Reason=maintenance: new fans",
    ]);
    cluster.wait_for_state("drained");
    for (facts, code) in [(&passing, 0), (&failing, 1)] {
        let out = healthcheck(&cluster, &["--facts", facts]);
        assert_eq!(out.code, code, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("left IDLE+DRAIN as it is")
                && out
                    .stdout
                    .contains("\"maintenance: new fans\" is not gpu-doctor's"),
            "{}",
            out.stdout
        );
        let seen = cluster.seen().unwrap();
        assert_eq!(
            (seen.state.as_str(), seen.reason.as_str()),
            ("drained", "maintenance: new fans")
        );
    }
    cluster.scontrol(&["update", &format!("NodeName={node}"), "State=RESUME"]);
    cluster.wait_for_state("idle");

    // No verdict (an unreadable facts file) touches nothing and says so on stdout, which is
    // what slurmd logs.
    let out = healthcheck(&cluster, &["--facts", "/nonexistent/facts.json"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/facts.json"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("left as it is"), "{}", out.stdout);
    assert_eq!(cluster.seen().unwrap().state, "idle");

    // A node Slurm does not know is no verdict, with scontrol's own words.
    let out = healthcheck(&cluster, &["--facts", &failing, "--node", "no-such-node"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no-such-node"), "{}", out.stderr);
    assert_eq!(cluster.seen().unwrap().state, "idle");
    eprintln!("slurm: whole test {:?}", started.elapsed());
}

#[test]
fn slurmd_runs_it_as_health_check_program() {
    let facts = FactsFile::new(FAILING);
    let hook = Hook {
        example: "slurm-healthcheck.sh",
        // As docs/slurm.md recommends, but every second instead of every five minutes.
        conf: "HealthCheckProgram=@SCRIPT@\nHealthCheckInterval=1\nHealthCheckNodeState=IDLE",
        facts: facts.path(),
    };
    let Some(cluster) = Cluster::start(Some(&hook)) else {
        return;
    };
    let started = Instant::now();
    let reason = format!("gpu-doctor: {}", line_of(&fixture(FAILING)));

    // slurmd runs the program at start and every interval: the node ends up drained.
    let seen = cluster.wait_for_state("drained");
    assert_eq!(seen.reason, reason);
    // slurmd logs the exit code and the program's stdout.
    let node = cluster.node.clone();
    let logged = format!("health_check failed: rc:1 output:gpu-doctor: drained {node}: {reason}");
    cluster.wait_until("slurmd's log of the health check", || {
        fs::read_to_string(cluster.dir().join("slurmd.log"))
            .ok()
            .filter(|log| log.contains(&logged))
    });
    eprintln!(
        "slurm: drained by slurmd {:?} after start",
        started.elapsed()
    );

    // The machine is repaired: the next run resumes the drained (idle) node.
    facts.set(PASSING);
    let seen = cluster.wait_for_state("idle");
    assert_eq!(seen.reason, "none");
    eprintln!(
        "slurm: resumed by slurmd {:?} after start",
        started.elapsed()
    );
}

#[test]
fn a_prolog_running_it_keeps_jobs_off_the_node_until_it_passes() {
    let facts = FactsFile::new(FAILING);
    let hook = Hook {
        example: "slurm-prolog.sh",
        conf: "Prolog=@SCRIPT@",
        facts: facts.path(),
    };
    let Some(cluster) = Cluster::start(Some(&hook)) else {
        return;
    };
    let started = Instant::now();
    cluster.wait_for_state("idle");
    let reason = format!("gpu-doctor: {}", line_of(&fixture(FAILING)));
    let job_out = cluster.dir().join("job.out");
    let mut sbatch = cluster.slurm(Programs::get(&cluster.programs.sbatch));
    sbatch
        .arg("--parsable")
        .arg(format!("--output={}", job_out.display()))
        .args(["--wrap", "echo job ran"]);
    let job = run(&mut sbatch, "sbatch").trim().to_string();

    // The Prolog drains the node with gpu-doctor's reason (slurmd keeps it), and the job is
    // requeued and held instead of running on the broken node.
    let seen = cluster.wait_for_state("drained");
    assert_eq!(seen.reason, reason);
    let mut squeue = cluster.slurm(Programs::get(&cluster.programs.squeue));
    squeue.args(["-h", "-j", &job, "-o", "%T|%r"]);
    cluster.wait_until("the job requeued and held", || {
        let out = process::run(&mut squeue, Duration::from_secs(20), 1 << 16).ok()?;
        (out.stdout_text().trim() == "PENDING|launch failed requeued held").then_some(())
    });
    // (slurmd may have created the output file; the job must not have written to it.)
    let written = fs::read_to_string(&job_out).unwrap_or_default();
    assert!(
        !written.contains("job ran"),
        "the job ran on a node that is not ready"
    );

    // Repaired: a passing check resumes the node, and the released job runs.
    facts.set(PASSING);
    let out = healthcheck(&cluster, &["--facts", &fixture(PASSING)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    cluster.wait_for_state("idle");
    cluster.scontrol(&["release", &job]);
    // Slurm holds a requeued job back for two minutes (its BeginTime): make it eligible now.
    cluster.scontrol(&["update", &format!("JobId={job}"), "StartTime=now"]);
    cluster.wait_until("the job's output", || {
        fs::read_to_string(&job_out)
            .ok()
            .filter(|t| t.contains("job ran"))
    });
    eprintln!("slurm: prolog cycle {:?}", started.elapsed());
}
