//! Bounds on what a rule file may ask of the doctor, checked when the file is loaded.
//!
//! Rule files come from repositories (a pre-commit hook loads the ones a project's
//! configuration names), so a rule file is untrusted input. CEL cannot do input or output: the
//! environment registers only the standard functions (no file, network, environment or clock
//! access), so a condition can read the facts it is given and nothing else. What CEL does not
//! bound is cost: the `cel` crate has no cost budget and cannot be interrupted, and its parser
//! and interpreter recurse, so a deep expression can overflow the stack (an abort, not a
//! panic). Hence these static bounds, each reported as `file:line:column: error: ...`:
//!
//! - a rule file is at most [`MAX_FILE_BYTES`] and holds at most [`MAX_RULES_PER_FILE`] rules;
//! - a condition is at most [`MAX_CONDITION_CHARS`] characters, its syntax tree at most
//!   [`MAX_DEPTH`] deep and [`MAX_NODES`] nodes;
//! - at most [`MAX_COMPREHENSIONS`] macros that loop (`all`, `exists`, `exists_one`, `map`,
//!   `filter`), nested at most [`MAX_LOOP_NESTING`] deep;
//! - `matches` takes a literal pattern, which must compile within [`MAX_REGEX_BYTES`];
//! - the estimated cost, in evaluation steps, is at most [`MAX_COST`] per rule (the cost
//!   of one evaluation times the items of its scope) and [`MAX_FILE_COST`] per file;
//! - all the rule files of one run together (a configuration can name many, each within the
//!   bounds above): at most [`MAX_RULE_FILES`] files, [`MAX_TOTAL_RULE_BYTES`] bytes and
//!   [`MAX_TOTAL_COST`] estimated steps ([`Spent`]); the file that crosses a total is named.
//!
//! The cost estimate counts the syntax tree's nodes, each multiplied by the sizes of the lists
//! the loops around it run over. A list's size is known for a literal (`[1, 2]`), a sum
//! (`a + b`) and a macro's result (`l.map(..)` is as long as `l`); any other list, a list of
//! facts, is taken to hold [`ASSUMED_LIST_ITEMS`] items, and so is a scope (the GPUs, the
//! environments). Probes record far fewer (a few GPUs, a few environments, tens of processes),
//! so the estimate is an upper bound for facts probed on a real machine. Calls that cost more
//! than a step are weighed: `matches` compiles its pattern on every call, `in` walks its list
//! and `+` copies the lists it joins. docs/security.md quotes the worst case measured under these bounds.
//!
//! Loading runs on a thread with a large stack ([`LOADER_STACK_BYTES`]): the CEL parser needs
//! far more stack than the bounds above suggest in an unoptimized build, and the loader must
//! reject a hostile expression, not die parsing it.

use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;

/// Largest rule file read (the built-in packs are a few tens of KiB).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most `[[rule]]` tables in one file.
pub const MAX_RULES_PER_FILE: usize = 500;
/// Longest condition, in characters (the longest built-in one has about 500).
pub const MAX_CONDITION_CHARS: usize = 2048;
/// Deepest syntax tree of a condition: nested brackets, calls, field selections, operators.
pub const MAX_DEPTH: usize = 32;
/// Most nodes in a condition's syntax tree (macros count with their expansion).
pub const MAX_NODES: usize = 1024;
/// Most looping macros in one condition.
pub const MAX_COMPREHENSIONS: usize = 8;
/// Deepest nesting of looping macros (a loop in a loop's body is nesting 2).
pub const MAX_LOOP_NESTING: usize = 2;
/// Most bytes a `matches` pattern may compile to (the regex crate's own limit is 10 MiB).
pub const MAX_REGEX_BYTES: usize = 64 * 1024;
/// The items a list of facts, or a scope, is assumed to hold when estimating cost.
pub const ASSUMED_LIST_ITEMS: u64 = 256;
/// Most estimated evaluation steps for one rule, over all items of its scope.
pub const MAX_COST: u64 = 2_000_000;
/// Most estimated evaluation steps for all the rules of one file together.
pub const MAX_FILE_COST: u64 = 20_000_000;
/// Most rule files one run loads (the configuration's and `--rules` together).
pub const MAX_RULE_FILES: usize = 32;
/// Most bytes of all the rule files of one run together.
pub const MAX_TOTAL_RULE_BYTES: u64 = 4 * MAX_FILE_BYTES as u64;
/// Most estimated evaluation steps of all the rule files of one run together: as much as one
/// file may cost, so that many files cost no more time than the costliest single one.
pub const MAX_TOTAL_COST: u64 = MAX_FILE_COST;
/// Stack of the thread that loads a rule file.
pub const LOADER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Steps charged for one `matches` call: it compiles its pattern each time. Measured in a
/// release build: a pattern within [`MAX_REGEX_BYTES`] compiles in at most about 0.2 ms and
/// matches 4 KiB of text in at most about 0.5 ms; a step of the interpreter takes about 0.2 µs.
const REGEX_CALL_STEPS: u64 = 5_000;

/// The functions and operators a condition may call: CEL's standard ones that this build
/// registers, none of which reads a file, the environment, the clock or the network. A call
/// of anything else is refused at load, so a function added to the `cel` crate later cannot
/// be reached by a rule file before it is reviewed here.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // Operators, and what the macros expand to.
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "_?_:_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@in",
    "@not_strictly_false",
    // Functions.
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
    "hasValue",
    "value",
    "or",
    "orValue",
];

/// A bound a condition breaks: where (a character index into the condition) and which.
pub type Violation = (usize, String);

/// Run `work` (loading a rule file) on a thread with [`LOADER_STACK_BYTES`] of stack; on the
/// calling thread when no thread can be started.
pub fn on_loader_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let spawned = std::thread::scope(|s| {
        let job = &mut work;
        let handle = std::thread::Builder::new()
            .name("rule-loader".to_string())
            .stack_size(LOADER_STACK_BYTES)
            .spawn_scoped(s, move || job.take().map(|w| w()));
        match handle {
            Ok(h) => match h.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => None,
        }
    });
    match (spawned, work) {
        (Some(result), _) => result,
        (None, Some(work)) => work(),
        // The closure ran and gave nothing: impossible, as it always returns Some.
        (None, None) => unreachable!("the loader closure ran without a result"),
    }
}

/// Read a rule file, refusing one larger than [`MAX_FILE_BYTES`] without reading more than
/// that, and anything but a regular file (a repository can hold a symlink to `/dev/zero` or
/// a FIFO, which would never end or never answer). The error is the message to show.
pub fn read_rule_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the rule file: {e}"))?;
    if !meta.is_file() {
        return Err("cannot read the rule file: it is not a regular file".to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the rule file: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the rule file: {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the rule file is too large: more than {MAX_FILE_BYTES} bytes; split it"
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("cannot read the rule file: it is not UTF-8 text: {e}"))
}

/// A rule file that a configuration names must be inside the configuration's folder, symlinks
/// resolved: a repository's configuration must not make gpu-doctor read a file elsewhere and
/// quote it in an error message (the first line of `~/.netrc` in a public CI log). Rule files
/// elsewhere are given on the command line (`--rules`). A file that does not exist is left to
/// the loader, which says it cannot be read.
pub fn inside_folder(path: &std::path::Path, folder: &std::path::Path) -> Result<(), String> {
    let (Ok(file), Ok(dir)) = (path.canonicalize(), folder.canonicalize()) else {
        return Ok(());
    };
    if file.starts_with(&dir) {
        return Ok(());
    }
    Err(format!(
        "the rule file {} is outside the configuration's folder {}: a configuration may name \
         only rule files inside its folder (give others with --rules)",
        path.display(),
        dir.display()
    ))
}

/// Checks made before parsing: the condition's length.
pub fn check_text(condition: &str) -> Result<(), Violation> {
    let chars = condition.chars().count();
    if chars > MAX_CONDITION_CHARS {
        return Err((
            MAX_CONDITION_CHARS,
            format!(
                "condition too long: {chars} characters, the limit is {MAX_CONDITION_CHARS}; \
                 split it into several rules"
            ),
        ));
    }
    Ok(())
}

/// What [`check_program`] found: the estimated cost and the bounds broken.
#[derive(Debug, Default)]
pub struct Checked {
    /// Estimated evaluation steps over all items of the rule's scope.
    pub steps: u64,
    pub violations: Vec<Violation>,
}

/// Checks made on the parsed condition: depth, size, loops, patterns and estimated cost.
/// `per_item` is true for rules evaluated once per item of a scope. Positions come from the
/// program's source information (byte offsets, turned into character indices here).
pub fn check_program(program: &cel::Program, per_item: bool) -> Checked {
    let violations = |v: Vec<Violation>| Checked {
        steps: 0,
        violations: v,
    };
    let info = program.source_info();
    let source = &info.source;
    let at = |id: u64, call: bool| {
        let byte = info.offset_for(id).map_or(0, |(start, _)| start as usize);
        let byte = if call {
            name_of_call(source, byte)
        } else {
            byte
        };
        source.char_indices().take_while(|(i, _)| *i < byte).count()
    };
    let root = program.expression();
    let shape = shape(root);
    if let Some((id, depth)) = shape.too_deep {
        return violations(vec![(
            at(id, false),
            format!(
                "condition nested too deeply: depth {depth} here, the limit is {MAX_DEPTH}; \
                 use fewer nested brackets, calls or operators"
            ),
        )]);
    }
    let mut out = Vec::new();
    if shape.nodes > MAX_NODES {
        out.push((
            0,
            format!(
                "condition too large: {} syntax nodes, the limit is {MAX_NODES}; split it into \
                 several rules",
                shape.nodes
            ),
        ));
    }
    let mut cost = Cost::default();
    let scope_items = if per_item { ASSUMED_LIST_ITEMS } else { 1 };
    cost.walk(root, scope_items, 0);
    out.extend(
        cost.violations
            .into_iter()
            .map(|(id, call, m)| (at(id, call), m)),
    );
    if cost.comprehensions > MAX_COMPREHENSIONS {
        out.push((
            0,
            format!(
                "too many loops: {} uses of all/exists/exists_one/map/filter, the limit is \
                 {MAX_COMPREHENSIONS}",
                cost.comprehensions
            ),
        ));
    }
    if out.is_empty() && cost.steps > MAX_COST {
        let per = if per_item {
            format!(", counting {ASSUMED_LIST_ITEMS} items in the rule's scope")
        } else {
            String::new()
        };
        out.push((
            0,
            format!(
                "condition too costly: about {} evaluation steps (lists of facts counted as \
                 {ASSUMED_LIST_ITEMS} items{per}), the limit is {MAX_COST}; loop over fewer or \
                 shorter lists, or nest loops less",
                cost.steps
            ),
        ));
    }
    Checked {
        steps: cost.steps,
        violations: out,
    }
}

/// What the user's rule files of one run have taken so far of the totals ([`MAX_RULE_FILES`],
/// [`MAX_TOTAL_RULE_BYTES`], [`MAX_TOTAL_COST`]). Each `add_` counts one more file's share and
/// says, as the message to show for that file, when it crosses a total.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    files: usize,
    bytes: u64,
    steps: u64,
}

impl Spent {
    /// One more file, before it is read.
    pub fn add_file(&mut self) -> Result<(), String> {
        self.files += 1;
        if self.files > MAX_RULE_FILES {
            return Err(format!(
                "too many rule files: this is file {} of this run, the limit is \
                 {MAX_RULE_FILES}; merge rule files or name fewer",
                self.files
            ));
        }
        Ok(())
    }

    /// The bytes of the file just read.
    pub fn add_bytes(&mut self, bytes: usize) -> Result<(), String> {
        self.bytes = self.bytes.saturating_add(bytes as u64);
        if self.bytes > MAX_TOTAL_RULE_BYTES {
            return Err(format!(
                "the rule files of this run are too large together: {} bytes with this one, the \
                 limit is {MAX_TOTAL_RULE_BYTES}; name fewer or smaller rule files",
                self.bytes
            ));
        }
        Ok(())
    }

    /// The estimated evaluation steps counted so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The estimated evaluation steps of the file just loaded.
    pub fn add_steps(&mut self, steps: u64) -> Result<(), String> {
        self.steps = self.steps.saturating_add(steps);
        if self.steps > MAX_TOTAL_COST {
            return Err(format!(
                "the rule files of this run are too costly together: about {} evaluation steps \
                 with this one, the limit is {MAX_TOTAL_COST}; name fewer rule files or make \
                 their conditions cheaper",
                self.steps
            ));
        }
        Ok(())
    }
}

/// The error for a rule file larger than [`MAX_FILE_BYTES`].
pub fn file_too_large(bytes: u64) -> String {
    format!("the rule file is too large: {bytes} bytes, the limit is {MAX_FILE_BYTES}; split it")
}

/// The error for a file with more than [`MAX_RULES_PER_FILE`] rules (at the first one over).
pub fn too_many_rules(count: usize) -> String {
    format!(
        "too many rules in one file: {count}, the limit is {MAX_RULES_PER_FILE}; split the file"
    )
}

/// The error for a file whose rules together cost more than [`MAX_FILE_COST`].
pub fn file_cost_message(steps: u64) -> String {
    format!(
        "the rules of this file are too costly together: about {steps} evaluation steps, the \
         limit is {MAX_FILE_COST}; split the file or make its conditions cheaper"
    )
}

/// CEL places a call at its `(` (a function or macro) or at the `.` before its name (a
/// method); point at the name instead, which is what a reader looks for.
fn name_of_call(source: &str, byte: usize) -> usize {
    let Some(rest) = source.get(byte..) else {
        return byte;
    };
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    if let Some(after_dot) = rest.strip_prefix('.') {
        let name = after_dot.trim_start();
        return source.len() - name.len();
    }
    if rest.starts_with('(') {
        let before = source[..byte].trim_end();
        let start = before.trim_end_matches(is_name).len();
        if start < before.len() {
            return start;
        }
    }
    byte
}

/// The size and depth of a syntax tree, walked without recursion (a tree too deep for the
/// stack must still be measured).
struct Shape {
    nodes: usize,
    /// The first node found deeper than [`MAX_DEPTH`], and its depth.
    too_deep: Option<(u64, usize)>,
}

fn shape(root: &IdedExpr) -> Shape {
    let mut nodes = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        nodes += 1;
        if depth > MAX_DEPTH {
            return Shape {
                nodes,
                too_deep: Some((e.id, depth)),
            };
        }
        stack.extend(children(e).into_iter().map(|c| (c, depth + 1)));
    }
    Shape {
        nodes,
        too_deep: None,
    }
}

/// The direct subexpressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => Some([&m.key, &m.value]),
                EntryExpr::StructField(_) => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::StructField(f) => Some(&f.value),
                EntryExpr::MapEntry(_) => None,
            })
            .collect(),
        Expr::Select(s) => vec![&s.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// The estimated number of items of a list-valued expression (see the module documentation).
fn list_size(e: &IdedExpr) -> u64 {
    match &e.expr {
        Expr::List(list) => list.elements.len() as u64,
        Expr::Map(map) => map.entries.len() as u64,
        Expr::Literal(_) => 1,
        Expr::Call(call) if call.func_name == "_+_" && call.args.len() == 2 => {
            list_size(&call.args[0]).saturating_add(list_size(&call.args[1]))
        }
        Expr::Call(call) if call.func_name == "_?_:_" && call.args.len() == 3 => {
            list_size(&call.args[1]).max(list_size(&call.args[2]))
        }
        // `map` and `filter` build a list as long as their range at most; the other macros
        // give a boolean.
        Expr::Comprehension(c) if matches!(c.accu_init.expr, Expr::List(_)) => {
            list_size(&c.iter_range)
        }
        Expr::Comprehension(_) => 1,
        _ => ASSUMED_LIST_ITEMS,
    }
}

fn unknown_function(name: &str) -> String {
    let functions: Vec<&str> = ALLOWED_FUNCTIONS
        .iter()
        .copied()
        .filter(|f| !f.contains('_') && !f.starts_with('@'))
        .collect();
    format!(
        "unknown function `{name}`; a condition may call only CEL's standard functions: {} \
         (and the macros has, all, exists, exists_one, map, filter)",
        functions.join(", ")
    )
}

/// Whether `e` is written as a list: a literal, a `map` or `filter`, or a sum with one.
fn builds_a_list(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::List(_) | Expr::Map(_) => true,
        Expr::Comprehension(c) => matches!(c.accu_init.expr, Expr::List(_)),
        Expr::Call(call) if call.func_name == "_+_" => call.args.iter().any(builds_a_list),
        _ => false,
    }
}

/// The estimated cost of a condition, and the bounds it breaks on the way.
#[derive(Default)]
struct Cost {
    steps: u64,
    comprehensions: usize,
    /// Node id, whether the node is a call (placed at its name), message.
    violations: Vec<(u64, bool, String)>,
}

impl Cost {
    /// Add the cost of `e`, evaluated `times` times, inside `loops` looping macros. Recursive:
    /// only called on trees no deeper than [`MAX_DEPTH`].
    fn walk(&mut self, e: &IdedExpr, times: u64, loops: usize) {
        self.steps = self
            .steps
            .saturating_add(times.saturating_mul(self.weight(e)));
        if let Expr::Comprehension(c) = &e.expr {
            self.comprehensions += 1;
            if loops + 1 > MAX_LOOP_NESTING {
                self.violations.push((
                    e.id,
                    true,
                    format!(
                        "loops nested too deeply: a loop inside {loops} others, the limit is \
                         {MAX_LOOP_NESTING} levels"
                    ),
                ));
            }
            let each = times.saturating_mul(list_size(&c.iter_range));
            self.walk(&c.iter_range, times, loops);
            self.walk(&c.accu_init, times, loops);
            self.walk(&c.loop_cond, each, loops + 1);
            self.walk(&c.loop_step, each, loops + 1);
            self.walk(&c.result, times, loops);
            return;
        }
        for child in children(e) {
            self.walk(child, times, loops);
        }
    }

    /// The steps one evaluation of the node itself takes (its children are counted apart).
    fn weight(&mut self, e: &IdedExpr) -> u64 {
        let Expr::Call(call) = &e.expr else {
            return 1;
        };
        // `optional.of(1)` is parsed as a call of `of` on the identifier `optional`.
        let qualified = match call.target.as_deref().map(|t| &t.expr) {
            Some(Expr::Ident(namespace)) => format!("{namespace}.{}", call.func_name),
            _ => String::new(),
        };
        let name = call.func_name.as_str();
        if !ALLOWED_FUNCTIONS.contains(&name) && !ALLOWED_FUNCTIONS.contains(&qualified.as_str()) {
            self.violations.push((e.id, true, unknown_function(name)));
            return 1;
        }
        match call.func_name.as_str() {
            "matches" => {
                self.check_pattern(e.id, call);
                REGEX_CALL_STEPS
            }
            "@in" if call.args.len() == 2 => list_size(&call.args[1]),
            // Joining lists copies them; adding numbers or strings is a step.
            "_+_" if call.args.iter().any(builds_a_list) => {
                call.args.iter().map(list_size).fold(0, u64::saturating_add)
            }
            _ => 1,
        }
    }

    /// `matches`' pattern must be a literal that compiles within [`MAX_REGEX_BYTES`]: the
    /// interpreter compiles it on every call, so its size is part of the cost.
    fn check_pattern(&mut self, id: u64, call: &cel::common::ast::CallExpr) {
        use cel::common::ast::LiteralValue;
        let pattern = match (call.target.is_some(), call.args.as_slice()) {
            (true, [p]) | (false, [_, p]) => p,
            _ => return,
        };
        let Expr::Literal(LiteralValue::String(text)) = &pattern.expr else {
            self.violations.push((
                pattern.id,
                false,
                "the pattern of `matches` must be a string literal, so that it can be checked \
                 when the rule is loaded"
                    .to_string(),
            ));
            return;
        };
        let built = regex::RegexBuilder::new(text)
            .size_limit(MAX_REGEX_BYTES)
            .build();
        if let Err(e) = built {
            let why = match e {
                regex::Error::CompiledTooBig(_) => format!(
                    "the pattern of `matches` is too large: it compiles to more than \
                     {MAX_REGEX_BYTES} bytes"
                ),
                other => {
                    format!("the pattern of `matches` is not a valid regular expression: {other}")
                }
            };
            self.violations.push((id, true, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(src: &str, per_item: bool) -> Vec<Violation> {
        let env = cel::Env::stdlib();
        let program =
            on_loader_stack(|| env.compile(src).map_err(|e| e.to_string())).expect("compiles");
        check_program(&program, per_item).violations
    }

    #[test]
    fn built_in_shapes_are_within_bounds() {
        for src in [
            "host.nvidia_gpus > 0 && venv.torch.installed && venv.torch.cuda == null",
            "gpu.processes.exists(p, p.used_mib > 100)",
            "venv.name.matches('^\\\\.venv[0-9]*$')",
        ] {
            assert_eq!(violations(src, true), vec![], "{src}");
        }
        let nested = "driver.gpus.exists(g, g.processes.exists(p, p.kind == 'compute'))";
        assert_eq!(violations(nested, false), vec![]);
    }

    /// The deepest tree below `root`, measured (only for trees known to be within bounds).
    fn depth(e: &IdedExpr) -> usize {
        1 + children(e).into_iter().map(depth).max().unwrap_or(0)
    }

    /// The built-in rules stay well inside every bound, so the bounds refuse only what no
    /// real rule needs.
    #[test]
    fn built_in_rules_use_at_most_half_of_each_bound() {
        let set = crate::rules::RuleSet::builtin().expect("built-in rules load");
        let env = cel::Env::stdlib();
        let (mut deepest, mut largest, mut costliest) = (0, 0, 0);
        for rule in set.rules() {
            let program = env
                .compile(&rule.when)
                .expect("built-in conditions compile");
            let checked = check_program(&program, rule.scope != crate::rules::Scope::Host);
            deepest = deepest.max(depth(program.expression()));
            largest = largest.max(shape(program.expression()).nodes);
            costliest = costliest.max(checked.steps);
            assert!(
                rule.when.chars().count() <= MAX_CONDITION_CHARS / 2,
                "{}",
                rule.id
            );
        }
        eprintln!("built-in rules: depth {deepest}, nodes {largest}, steps {costliest}");
        assert!(deepest <= MAX_DEPTH / 2, "depth {deepest}");
        assert!(largest <= MAX_NODES / 2, "nodes {largest}");
        assert!(costliest <= MAX_COST / 2, "steps {costliest}");
    }

    #[test]
    fn deep_trees_are_refused_with_a_position() {
        let src = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let v = violations(&src, false);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].1.contains("nested too deeply"), "{v:?}");
        let chain = format!("1{}", "+1".repeat(MAX_DEPTH));
        assert!(violations(&chain, false)[0].1.contains("nested too deeply"));
    }

    #[test]
    fn nested_loops_and_dynamic_patterns_are_refused() {
        let v = violations("a.all(x, a.all(y, a.all(z, x == y)))", false);
        assert!(
            v.iter().any(|(_, m)| m.contains("loops nested too deeply")),
            "{v:?}"
        );
        let v = violations("host.os.matches(host.arch)", false);
        assert!(v[0].1.contains("must be a string literal"), "{v:?}");
        let v = violations("host.os.matches('(')", false);
        assert!(v[0].1.contains("not a valid regular expression"), "{v:?}");
        let v = violations("host.os.matches('\\\\w{1000}{1000}')", false);
        assert!(v[0].1.contains("too large"), "{v:?}");
    }

    #[test]
    fn cost_multiplies_by_the_lists_loops_run_over() {
        // Two nested loops over facts lists, in a scoped rule: 256^3 * body > the limit.
        let v = violations("a.exists(x, b.exists(y, x == y))", true);
        assert!(v[0].1.contains("too costly"), "{v:?}");
        // The same in a host rule is within it.
        assert_eq!(
            violations("a.exists(x, b.exists(y, x == y))", false),
            vec![]
        );
        // Concatenation grows the list a loop runs over.
        let big = format!("({}).exists(x, x == 1)", vec!["a"; 20].join(" + "));
        let v = violations(&format!("{big} && b.exists(y, {big})"), false);
        assert!(v.iter().any(|(_, m)| m.contains("too costly")), "{v:?}");
    }

    /// Every allowed function is really registered, and nothing else is callable.
    #[test]
    fn the_allowed_functions_are_the_ones_that_run() {
        let env = std::sync::Arc::new(cel::Env::stdlib());
        let ctx = cel::Context::with_env(env.clone());
        for src in [
            "size('ab') == 2",
            "'abc'.contains('b')",
            "'abc'.startsWith('a')",
            "'abc'.endsWith('c')",
            "'abc'.matches('^a')",
            "int('3') == 3",
            "uint(3) == 3u",
            "double(1) == 1.0",
            "string(1) == '1'",
            "bytes('a') == b'a'",
            "bool('true')",
            "dyn(1) == 1",
            "type(1) == int",
            "optional.of(1).hasValue()",
            "optional.ofNonZeroValue(1).value() == 1",
            "!optional.none().hasValue()",
            "optional.none().or(optional.of(2)).value() == 2",
            "optional.none().orValue(3) == 3",
            "{'a': 1}[?'a'].hasValue() && [1][0] == 1 && {'a': {'b': 1}}.?a.hasValue()",
            "1 in [1] && -(1) == -1 && !false && (true ? 1 : 2) == 1 && 7 % 2 == 1",
        ] {
            let program = env.compile(src).expect(src);
            assert_eq!(check_program(&program, false).violations, vec![], "{src}");
            assert_eq!(program.execute(&ctx), Ok(cel::Value::Bool(true)), "{src}");
        }
        for src in [
            "readFile('/etc/passwd') == ''",
            "env('HOME') == ''",
            "now() > 0",
            "max(1, 2) == 2",
        ] {
            let program = env.compile(src).expect(src);
            let v = check_program(&program, false).violations;
            assert!(v[0].1.starts_with("unknown function"), "{src}: {v:?}");
            assert!(program.execute(&ctx).is_err(), "{src} runs");
        }
    }

    /// A condition at the depth bound evaluates on a test thread's 2 MiB stack in an
    /// unoptimized build, the most stack-hungry case there is (rules are evaluated on the
    /// calling thread).
    #[test]
    fn a_condition_at_the_depth_bound_evaluates_on_a_small_stack() {
        let env = std::sync::Arc::new(cel::Env::stdlib());
        let chain = format!("1{} > 0", " + 1".repeat(MAX_DEPTH - 2));
        let lists = format!(
            "{}1{} != []",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        let loops = format!(
            "[[1]].exists(a, a.exists(b, {}b{} > 0))",
            "(".repeat(20),
            " + 1)".repeat(20)
        );
        for src in [chain, lists, loops] {
            let program = on_loader_stack(|| env.compile(&src)).expect("compiles");
            assert_eq!(check_program(&program, false).violations, vec![], "{src}");
            let ctx = cel::Context::with_env(env.clone());
            assert_eq!(program.execute(&ctx), Ok(cel::Value::Bool(true)), "{src}");
        }
    }

    #[test]
    fn long_conditions_are_refused_before_parsing() {
        assert!(check_text(&"a".repeat(MAX_CONDITION_CHARS)).is_ok());
        let (at, msg) = check_text(&"a".repeat(MAX_CONDITION_CHARS + 1)).unwrap_err();
        assert_eq!(at, MAX_CONDITION_CHARS);
        assert!(msg.contains("condition too long"), "{msg}");
    }
}
