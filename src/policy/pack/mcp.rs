//! The pack's MCP mapping: which action a tool call through `sentinel mcp` becomes.
//!
//! ```toml
//! [[mcp.tools]]
//! tool = "pay_invoice"
//! action = "PAY_INVOICE"
//! ```
//!
//! A tool the pack does not map becomes its own name in upper snake case (the proxy's
//! choice); either way the action then meets the rules like any other, and an action no
//! module owns escalates.

use std::collections::BTreeMap;

use super::file::McpFile;
use super::{PolicyError, PolicyPack};
use crate::domain::validate::check_identifier;
use crate::domain::RiskScore;

/// Tool name -> action, checked at load.
#[derive(Debug, Default)]
pub(super) struct McpTools(BTreeMap<String, String>);

pub(super) fn compile(file: McpFile) -> Result<McpTools, PolicyError> {
    let mut tools = BTreeMap::new();
    for (i, entry) in file.tools.into_iter().enumerate() {
        if entry.tool.trim().is_empty() {
            return Err(PolicyError::Invalid(format!(
                "mcp.tools[{i}].tool: is empty"
            )));
        }
        check_identifier(&format!("mcp.tools[{i}].action"), &entry.action, true)
            .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        if tools.contains_key(&entry.tool) {
            return Err(PolicyError::Invalid(format!(
                "mcp.tools[{i}].tool: tool '{}' is mapped twice",
                entry.tool
            )));
        }
        tools.insert(entry.tool, entry.action);
    }
    Ok(McpTools(tools))
}

impl PolicyPack {
    /// The action the pack maps an MCP tool to, if it maps that tool.
    pub fn mcp_action(&self, tool: &str) -> Option<&str> {
        self.mcp.0.get(tool).map(String::as_str)
    }

    /// Every `[[mcp.tools]]` entry as (tool, action), sorted by tool.
    pub fn mcp_tools(&self) -> impl Iterator<Item = (&str, &str)> {
        self.mcp.0.iter().map(|(t, a)| (t.as_str(), a.as_str()))
    }

    /// The highest score approved without a human for `action`: the threshold of the module
    /// owning it; `None` when no module does (such an action always escalates).
    pub fn approval_threshold(&self, action: &str) -> Option<RiskScore> {
        self.by_action
            .get(action)
            .map(|&i| self.modules[i].threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACK: &str = r#"
        name = "mcp"
        [[modules]]
        name = "Pay"
        actions = ["PAY_INVOICE"]
        approve_max_score = 30
    "#;

    #[test]
    fn tools_map_to_actions_and_report_their_module_threshold() {
        let pack = PolicyPack::parse(&format!(
            "{PACK}\n[[mcp.tools]]\ntool = \"pay\"\naction = \"PAY_INVOICE\"\n[[mcp.tools]]\ntool = \"wire\"\naction = \"WIRE\"\n"
        ))
        .unwrap();
        assert_eq!(pack.mcp_action("pay"), Some("PAY_INVOICE"));
        assert_eq!(pack.mcp_action("other"), None);
        assert_eq!(
            pack.mcp_tools().collect::<Vec<_>>(),
            [("pay", "PAY_INVOICE"), ("wire", "WIRE")]
        );
        assert_eq!(
            pack.approval_threshold("PAY_INVOICE").map(|s| s.get()),
            Some(30)
        );
        assert_eq!(pack.approval_threshold("WIRE"), None);
    }

    #[test]
    fn bad_mappings_are_refused_naming_the_field() {
        let err = |extra: &str| {
            PolicyPack::parse(&format!("{PACK}\n{extra}"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("[[mcp.tools]]\ntool = \"\"\naction = \"A\"").contains("mcp.tools[0].tool"));
        assert!(err("[[mcp.tools]]\ntool = \"t\"\naction = \"has space\"")
            .contains("mcp.tools[0].action"));
        assert!(err("[[mcp.tools]]\ntool = \"t\"\naction = \"\"").contains("mcp.tools[0].action"));
        assert!(err(
            "[[mcp.tools]]\ntool = \"t\"\naction = \"A\"\n[[mcp.tools]]\ntool = \"t\"\naction = \"B\""
        )
        .contains("mcp.tools[1].tool: tool 't' is mapped twice"));
        assert!(err("[[mcp.tools]]\ntool = \"t\"").contains("action"));
    }
}
