//! The pack file's shape, as written in TOML: parsed here, compiled in `pack.rs`.

use serde::Deserialize;

use super::Effect;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PackFile {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) approve_max_score: Option<u8>,
    pub(super) approval_timeout_secs: Option<u64>,
    /// Facts of the pack (`[facts]`), bound to rules as `facts`.
    #[serde(default)]
    pub(super) facts: toml::Table,
    #[serde(default)]
    pub(super) modules: Vec<ModuleFile>,
    #[serde(default)]
    pub(super) rules: Vec<RuleFile>,
    /// `[[mcp.tools]]`: which action an MCP tool call becomes (`sentinel mcp`).
    #[serde(default)]
    pub(super) mcp: McpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct McpFile {
    #[serde(default)]
    pub(super) tools: Vec<McpToolFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct McpToolFile {
    pub(super) tool: String,
    pub(super) action: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModuleFile {
    pub(super) name: String,
    /// For readers of the pack; not used in evaluation.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: String,
    pub(super) actions: Vec<String>,
    pub(super) approve_max_score: Option<u8>,
    pub(super) approval_timeout_secs: Option<u64>,
    /// `false`: the scorer may only escalate or raise; approvals come from rules or humans.
    pub(super) scorer_may_approve: Option<bool>,
    /// The largest `payload.amount` the scorer may approve; without a numeric amount it may
    /// approve nothing.
    pub(super) scorer_max_approve_amount: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub(super) name: String,
    /// Runs only for these actions; all actions when absent.
    pub(super) actions: Option<Vec<String>>,
    /// Runs only in these modules; all modules when absent.
    pub(super) modules: Option<Vec<String>>,
    pub(super) when: String,
    pub(super) effect: Effect,
    pub(super) score: Option<u8>,
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) message: String,
}
