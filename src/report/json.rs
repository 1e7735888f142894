//! The json format: one document with the schema version, the verdict, the findings and the
//! Facts they were judged from. Nothing else goes to stdout. Fields may be added; none are
//! removed or renamed within a schema version.

use super::ReportInput;
use crate::app::AppError;
use crate::facts::SCHEMA_VERSION;
use serde::Serialize;

#[derive(Serialize, schemars::JsonSchema)]
struct Document<'a> {
    /// The facts' schema version (docs/facts.md).
    schema_version: u32,
    /// The gpu-doctor that recorded the facts (on a replay, another machine's).
    tool: &'a crate::facts::ToolInfo,
    /// The gpu-doctor that judged them and wrote this report.
    judged_by: JudgedBy,
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

/// The judging binary: its version can differ from the facts' `tool.version` on a replay.
#[derive(Serialize, schemars::JsonSchema)]
struct JudgedBy {
    /// Always "gpu-doctor".
    name: &'static str,
    version: &'static str,
}

pub fn render(input: &ReportInput) -> Result<String, AppError> {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        tool: &input.facts.tool,
        judged_by: JudgedBy {
            name: "gpu-doctor",
            version: env!("CARGO_PKG_VERSION"),
        },
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

/// The JSON Schema of the report, as published in docs/report.schema.json.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Document<'static>);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// docs/report.schema.json is generated from these types; this fails when it is stale.
    /// Regenerate with `UPDATE_DOCS=1 cargo test --lib published_schema_is_current`.
    #[test]
    fn published_schema_is_current() {
        crate::facts::check_published(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json"),
            &super::json_schema(),
        );
    }
}
