//! Hostile rule files, through the real binary: every bound of `rules::limits` refuses what
//! breaks it with the file, line, column and the limit, exit code 2 and nothing on stdout;
//! conditions built to overflow the parser's or the interpreter's stack are refused instead of
//! crashing the doctor; and a rule file cannot reach the environment, files or a shell.

use gpu_doctor::probe::process;
use gpu_doctor::rules::limits;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FACTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/facts/h100-python.json"
);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn doctor(args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("GPU_DOCTOR_NO_CONFIG", "1");
    let out = process::run(&mut cmd, Duration::from_secs(120), 16 << 20).expect("run gpu-doctor");
    Out {
        code: out.code,
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

/// A rule of `scope` with condition `when`, its `id` line first.
fn rule(id: &str, scope: &str, when: &str) -> String {
    format!(
        "[[rule]]\nid = \"{id}\"\ncategory = \"host\"\nseverity = \"warn\"\nscope = \"{scope}\"\n\
         since = \"0.1.0\"\nwhen = '''{when}'''\ntitle = \"t\"\nexplain = \"e\"\nfix.none = \"n\"\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Judge the recorded facts with `file`; the run must end in a verdict-less exit 2 whose
/// message names `file:line:column` (the column, or both, when given) and says `what`.
fn assert_refused(file: &Path, line: Option<usize>, column: Option<usize>, what: &str) {
    let out = doctor(&["check", "--facts", FACTS, "--rules", file.to_str().unwrap()]);
    assert_eq!(
        out.code,
        Some(2),
        "{}: expected exit 2 (a crash has no code)\nstderr: {}",
        file.display(),
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    let place = match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: error: ", file.display()),
        (Some(l), None) => format!("{}:{l}:", file.display()),
        _ => format!("{}:", file.display()),
    };
    assert!(
        out.stderr.contains(&place),
        "expected {place}\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(what),
        "expected {what:?}\n{}",
        out.stderr
    );
}

/// `when = '''` puts the condition at column 11 of line 7 in [`rule`]'s layout.
const WHEN_LINE: usize = 7;
const WHEN_COLUMN: usize = 11;

#[test]
fn each_bound_of_a_condition_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let loops = ["host.env.path_cuda_entries.exists(x, x == '')"; limits::MAX_COMPREHENSIONS + 1];
    let cases: Vec<(&str, &str, String, usize, &str)> = vec![
        (
            "long",
            "host",
            format!("true{}", " || true".repeat(limits::MAX_CONDITION_CHARS / 8)),
            WHEN_COLUMN + limits::MAX_CONDITION_CHARS,
            "condition too long",
        ),
        (
            "deep-lists",
            "host",
            format!("{}1{} != []", "[".repeat(40), "]".repeat(40)),
            WHEN_COLUMN + limits::MAX_DEPTH - 1,
            "nested too deeply: depth 33 here, the limit is 32",
        ),
        (
            "many-loops",
            "host",
            loops.join(" || "),
            WHEN_COLUMN,
            "too many loops: 9 uses",
        ),
        (
            "nested-loops",
            "host",
            "driver.gpus.exists(g, g.processes.exists(p, driver.gpus.exists(h, h.index == p.pid)))"
                .to_string(),
            WHEN_COLUMN + 56,
            "loops nested too deeply",
        ),
        (
            "costly",
            "venv",
            "venv.found_by.exists(a, venv.errors.exists(b, a == b))".to_string(),
            WHEN_COLUMN,
            "condition too costly",
        ),
        (
            "unknown-function",
            "host",
            "readFile('/etc/passwd') == ''".to_string(),
            WHEN_COLUMN,
            "unknown function `readFile`",
        ),
        (
            "dynamic-pattern",
            "host",
            "host.os.matches(host.arch)".to_string(),
            WHEN_COLUMN + 20,
            "must be a string literal",
        ),
        (
            "huge-pattern",
            "host",
            "host.os.matches('\\\\w{500}')".to_string(),
            WHEN_COLUMN + 8,
            "too large",
        ),
    ];
    for (id, scope, when, column, what) in cases {
        let file = write(dir.path(), &format!("{id}.toml"), &rule(id, scope, &when));
        assert_refused(&file, Some(WHEN_LINE), Some(column), what);
    }
}

/// Conditions shaped to overflow the stack of the CEL parser (deep brackets) or of the
/// syntax-tree walk and the interpreter (a long chain of operators): the debug build the tests
/// run overflows an 8 MiB stack on either unless the loader's own stack and bounds hold.
#[test]
fn stack_overflow_shapes_are_refused_not_crashed_on() {
    let dir = tempfile::tempdir().unwrap();
    let half = limits::MAX_CONDITION_CHARS / 2 - 1;
    let shapes = [
        (
            "parens",
            format!("{}1{}", "(".repeat(half), ")".repeat(half)),
        ),
        (
            "brackets",
            format!("{}1{}", "[".repeat(half), "]".repeat(half)),
        ),
        ("sum", format!("1{}", "+1".repeat(half))),
        (
            "indexes",
            format!("host.env.path_cuda_entries{}", "[0]".repeat(600)),
        ),
        ("calls", format!("host.os{}", ".size()".repeat(280))),
    ];
    for (id, when) in shapes {
        let file = write(dir.path(), &format!("{id}.toml"), &rule(id, "host", &when));
        assert_refused(&file, Some(WHEN_LINE), None, "error: ");
    }
    // The parser folds a run of negations: accepted, and judged without trouble.
    let when = format!("{}true", "!".repeat(limits::MAX_CONDITION_CHARS - 4));
    let file = write(
        dir.path(),
        "negations.toml",
        &rule("negations", "host", &when),
    );
    let out = doctor(&["check", "--facts", FACTS, "--rules", file.to_str().unwrap()]);
    assert!(
        matches!(out.code, Some(0 | 1)),
        "{:?} {}",
        out.code,
        out.stderr
    );
}

#[test]
fn a_condition_at_every_bound_loads_and_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let nested = "driver.gpus.exists(g, g.processes.exists(p, p.kind == 'compute'))";
    let single = "host.env.path_cuda_entries.exists(x, x == '')";
    let mut loops = vec![nested.to_string(); 2];
    loops.extend(vec![single.to_string(); limits::MAX_COMPREHENSIONS - 4]);
    loops.push("host.os.matches('^(linux|windows|macos)$')".to_string());
    loops.push(format!("{}1{} != []", "[".repeat(24), "]".repeat(24)));
    let file = write(
        dir.path(),
        "edge.toml",
        &rule("edge", "host", &loops.join(" || ")),
    );
    let out = doctor(&[
        "check",
        "--facts",
        FACTS,
        "--rules",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        matches!(out.code, Some(0 | 1)),
        "a verdict: {:?}\n{}",
        out.code,
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("a json report");
    let fired: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(
        fired.contains(&"edge"),
        "the edge rule holds on this machine: {fired:?}"
    );
}

#[test]
fn file_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // One rule over the count: the error is at that rule's table.
    let many: String = (0..=limits::MAX_RULES_PER_FILE)
        .map(|i| rule(&format!("r{i}"), "host", "false"))
        .collect();
    let file = write(dir.path(), "many.toml", &many);
    let line = limits::MAX_RULES_PER_FILE * 10 + 1;
    assert_refused(
        &file,
        Some(line),
        Some(1),
        "too many rules in one file: 501, the limit is 500",
    );

    // Rules that are each within bounds but too costly together.
    let costly = "host.env.path_cuda_entries.exists(a, driver.library_search.exists(b, a == b))";
    let together: String = (0..40)
        .map(|i| rule(&format!("c{i}"), "host", costly))
        .collect();
    let file = write(dir.path(), "costly.toml", &together);
    assert_refused(&file, Some(1), Some(1), "too costly together");

    // Larger than the size bound: refused before it is parsed.
    let mut big = rule("big", "host", "false");
    big.push_str(&"#".repeat(limits::MAX_FILE_BYTES));
    let file = write(dir.path(), "big.toml", &big);
    assert_refused(&file, Some(1), Some(1), "the rule file is too large");
}

/// A rule file must be a regular file: a repository can hold a symlink to /dev/zero (which
/// never ends) or a FIFO (which never answers).
#[cfg(unix)]
#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("rules.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    assert_refused(&link, Some(1), Some(1), "it is not a regular file");
    let fifo = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    assert_refused(&fifo, Some(1), Some(1), "it is not a regular file");
}

/// A repository's configuration cannot make gpu-doctor read a file outside its folder (and
/// quote it in an error): a path out of it, or a symlink in it that leads out, is refused.
#[cfg(unix)]
#[test]
fn a_configuration_names_rule_files_only_inside_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(
        dir.path(),
        "secret.txt",
        "machine example.org password SECRET-LINE\n",
    );
    let project = dir.path().join("project");
    fs::create_dir_all(&project).unwrap();
    std::os::unix::fs::symlink(&secret, project.join("link.toml")).unwrap();
    let own = write(&project, "own.toml", &rule("own", "host", "false"));
    for named in ["../secret.txt", "link.toml", secret.to_str().unwrap()] {
        let config = write(
            &project,
            "gpu-doctor.toml",
            &format!("rules = [\"own.toml\", '{named}']\n"),
        );
        let out = doctor(&[
            "check",
            "--facts",
            FACTS,
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(out.code, Some(2), "{named}: {}", out.stderr);
        assert!(out.stderr.contains("gpu-doctor.toml:1:"), "{}", out.stderr);
        assert!(
            out.stderr.contains("outside the configuration's folder"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("SECRET-LINE"), "{}", out.stderr);
    }
    // Inside the folder is fine.
    let config = write(&project, "gpu-doctor.toml", "rules = [\"own.toml\"]\n");
    let out = doctor(&[
        "check",
        "--facts",
        FACTS,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    assert!(own.exists());
}

/// Templates read the bound facts only: no environment variables, no files, no commands. A
/// rule that tries is refused at load; text that looks like a command substitution stays text.
#[test]
fn templates_reach_only_the_facts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let with = |title: &str, fix: &str| {
        rule("t", "host", "true")
            .replace("title = \"t\"", &format!("title = '''{title}'''"))
            .replace("fix.none = \"n\"", &format!("fix.bash = '''{fix}'''"))
    };
    for (title, what) in [
        ("{env.HOME}", "unknown variable `env`"),
        ("{HOME}", "unknown variable `HOME`"),
        ("{host.env.HOME}", "HOME"),
    ] {
        let file = write(dir.path(), "env.toml", &with(title, "true"));
        assert_refused(&file, Some(8), None, what);
    }
    let touch = format!("$(touch {0}) `touch {0}`", marker.display());
    let file = write(
        dir.path(),
        "subst.toml",
        &with(&touch, &format!("touch {}", marker.display())),
    );
    for format in ["human", "json", "markdown"] {
        let out = doctor(&[
            "check",
            "--facts",
            FACTS,
            "--rules",
            file.to_str().unwrap(),
            "--format",
            format,
            "-v",
            "--fail-on",
            "warn",
        ]);
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stdout.contains("touch "),
            "the text is shown as text ({format})"
        );
    }
    assert!(!marker.exists(), "nothing in a rule file ran");
}

/// A configuration naming many rule files, each within every bound of one file, cannot add
/// up to minutes (issue 13: 200 files of nested loops over literal lists took 231 s in the
/// quick profile): the run's rule files share one budget of count, bytes and estimated cost,
/// and the file that crosses it is refused by name, before anything is evaluated.
#[test]
fn many_rule_files_are_refused_at_the_one_that_crosses_the_total_budget() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    fs::create_dir_all(&project).unwrap();
    // Ten rules of two nested loops over literal lists of 440 and 410 items: about 1.8 x 10^5
    // evaluations of the loop body each, real work at run time (a literal list is not a fact).
    let list = |n: usize| format!("[{}]", vec!["0"; n].join(","));
    let costly = format!("{}.exists(a, {}.exists(b, a == 1))", list(440), list(410));
    let file_text: String = (0..10)
        .map(|i| rule(&format!("nested-{i}"), "host", &costly))
        .collect();
    let names: Vec<String> = (0..200).map(|i| format!("r{i:03}.toml")).collect();
    for (i, name) in names.iter().enumerate() {
        // Each file its own ids: only the budget can refuse them.
        write(
            &project,
            name,
            &file_text.replace("nested-", &format!("f{i}-")),
        );
    }
    // One such file alone is within every bound.
    let one = project.join(&names[0]);
    let out = doctor(&["rules", "--rules", one.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "one file alone loads: {}", out.stderr);

    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let config = write(
        &project,
        "gpu-doctor.toml",
        &format!("rules = [{}]\n", quoted.join(", ")),
    );
    let config = config.to_str().unwrap();
    for args in [
        &[
            "check",
            "--facts",
            FACTS,
            "--profile",
            "quick",
            "--config",
            config,
        ][..],
        &["rules", "--config", config][..],
    ] {
        let out = doctor(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        // The second file crosses the total cost: the first one takes most of it.
        let second = project.join(&names[1]);
        assert!(
            out.stderr
                .contains(&format!("{}:1:1: error: ", second.display())),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("the rule files of this run are too costly together")
                && out
                    .stderr
                    .contains(&format!("the limit is {}", limits::MAX_TOTAL_COST)),
            "{}",
            out.stderr
        );
    }

    // Cheap files are counted too: the first one over the count is named.
    let cheap = rule("cheap", "host", "false");
    for (i, name) in names.iter().enumerate() {
        write(
            &project,
            name,
            &cheap.replace("cheap", &format!("cheap-{i}")),
        );
    }
    let out = doctor(&["rules", "--config", config]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let over = project.join(&names[limits::MAX_RULE_FILES]);
    assert!(
        out.stderr
            .contains(&format!("{}:1:1: error: ", over.display()))
            && out.stderr.contains(&format!(
                "too many rule files: this is file {} of this run, the limit is {}",
                limits::MAX_RULE_FILES + 1,
                limits::MAX_RULE_FILES
            )),
        "{}",
        out.stderr
    );
}

/// What a configuration names as a rule file is said for what it is: a folder, a FIFO or a
/// device is not "not found" (and is never opened: a FIFO would never answer).
#[cfg(unix)]
#[test]
fn a_configuration_naming_a_folder_fifo_or_device_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    fs::create_dir_all(project.join("folder.toml")).unwrap();
    let made = Command::new("mkfifo")
        .arg(project.join("fifo.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", project.join("zero.toml")).unwrap();
    for (named, says) in [
        ("folder.toml", "is a folder, not a rule file"),
        ("fifo.toml", "is a FIFO (named pipe), not a rule file"),
        ("zero.toml", "is a device, not a rule file"),
        ("missing.toml", "not found"),
    ] {
        let config = write(
            &project,
            "gpu-doctor.toml",
            &format!("rules = [\"{named}\"]\n"),
        );
        let out = doctor(&["rules", "--config", config.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{named}: {}", out.stderr);
        assert!(
            out.stderr.contains("gpu-doctor.toml:1:") && out.stderr.contains(says),
            "{named}: expected {says:?}\n{}",
            out.stderr
        );
    }
}
