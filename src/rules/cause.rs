//! One root cause, its consequences under it.
//!
//! A rule may name the rules whose findings cause its own (`caused_by` in the rule file): GPUs
//! hidden by CUDA_VISIBLE_DEVICES make every CUDA backend see no device, a driver that is not
//! loaded makes every CUDA call fail, a CPU-only build puts its offload proof's layers on the
//! CPU. Such a finding is not a second problem: it is put under its cause's finding, where
//! every format shows it, and it is not counted on its own. A cause about a Python
//! environment takes only consequences about the same environment; one about the whole
//! machine takes any. Chains collapse onto their first cause; a finding whose causes only lead back to
//! itself stays where it is.

use super::{Finding, RuleSet};

/// The findings with each consequence moved under the finding that causes it, in order.
pub fn group_by_cause(rules: &RuleSet, findings: Vec<Finding>) -> Vec<Finding> {
    let parents: Vec<Option<usize>> = (0..findings.len())
        .map(|i| cause_of(rules, &findings, i))
        .collect();
    let roots: Vec<usize> = (0..findings.len()).map(|i| root_of(&parents, i)).collect();
    let mut slots: Vec<Option<Finding>> = findings.into_iter().map(Some).collect();
    let mut consequences: Vec<Vec<Finding>> = vec![Vec::new(); slots.len()];
    for (i, &root) in roots.iter().enumerate() {
        if root != i {
            if let Some(f) = slots[i].take() {
                consequences[root].push(f);
            }
        }
    }
    slots
        .into_iter()
        .zip(consequences)
        .filter_map(|(f, under)| {
            let mut f = f?;
            f.consequences.extend(under);
            Some(f)
        })
        .collect()
}

/// The first finding that causes finding `i`.
fn cause_of(rules: &RuleSet, findings: &[Finding], i: usize) -> Option<usize> {
    let f = &findings[i];
    let causes = &rules.get(&f.rule)?.caused_by;
    if causes.is_empty() {
        return None;
    }
    findings
        .iter()
        .enumerate()
        .position(|(j, g)| j != i && causes.contains(&g.rule) && reaches(g, f))
}

/// A cause about the whole machine reaches every finding; one about a Python environment
/// reaches only findings about that environment (not the reference engine, not the machine).
fn reaches(cause: &Finding, consequence: &Finding) -> bool {
    match &cause.environment {
        None => true,
        Some(env) => consequence.environment.as_ref() == Some(env),
    }
}

/// The first cause of `i`'s chain of causes; `i` itself when it has none or the chain loops.
fn root_of(parents: &[Option<usize>], i: usize) -> usize {
    let mut at = i;
    for _ in 0..parents.len() {
        match parents[at] {
            Some(p) if p == i => return i,
            Some(p) => at = p,
            None => return at,
        }
    }
    i
}

/// Every finding, consequences included, for what must count them all (the exit code).
pub fn all_findings(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings
        .iter()
        .flat_map(|f| std::iter::once(f).chain(f.consequences.iter()))
}
