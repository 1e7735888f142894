//! The json format: one document with the schema version, the verdict, the findings and the
//! Facts they were judged from. Nothing else goes to stdout. Fields may be added; none are
//! removed or renamed within a schema version.

use super::ReportInput;
use crate::app::AppError;
use crate::facts::SCHEMA_VERSION;
use serde::Serialize;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    tool: &'a crate::facts::ToolInfo,
    verdict: &'a super::Verdict,
    /// Each finding the verdict counts; a finding another one causes is in its cause's
    /// `consequences`, not here.
    findings: &'a [crate::rules::Finding],
    /// The environment matrix as judged: one row per Python environment, with its verdict
    /// (ready, partial, broken, empty, unknown, missing).
    environments: &'a [crate::knowledge::derive::MatrixRow],
    /// Findings the configuration waives, each with its waiver; not counted in the verdict.
    waived: &'a [super::Waived],
    /// Built-in rules that a rule file replaced (`override = true`).
    overrides: Vec<super::Override>,
    /// The configuration file used, if any.
    config: Option<&'a str>,
    facts: &'a crate::facts::Facts,
}

pub fn render(input: &ReportInput) -> Result<String, AppError> {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        tool: &input.facts.tool,
        verdict: input.verdict,
        findings: input.findings,
        environments: &input.derived.python.matrix,
        waived: input.waived,
        overrides: super::overrides(input.rules),
        config: input.config,
        facts: input.facts,
    };
    let mut text =
        serde_json::to_string_pretty(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}
