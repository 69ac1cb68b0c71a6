//! Which prompt-attack classifier reads the agent's text (`SENTINEL_GUARD_MODEL`): a model id
//! and the family it belongs to, which decides how it is asked (`scoring::guard`).

/// On by default whenever an LLM is configured.
pub const DEFAULT_GUARD_MODEL: &str = "meta-llama/llama-prompt-guard-2-86m";

/// How a classifier is asked and how it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardFamily {
    PromptGuard,
    Safeguard,
}

/// A classifier by its model id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardModel {
    pub id: String,
    pub family: GuardFamily,
}

impl GuardModel {
    /// Reads `SENTINEL_GUARD_MODEL`: `off`, `none`, `false`, `0` or empty disable the
    /// classifier (`Ok(None)`); a model id selects the family by its name.
    pub fn parse(value: &str) -> Result<Option<GuardModel>, String> {
        let id = value.trim();
        if matches!(
            id.to_ascii_lowercase().as_str(),
            "" | "off" | "none" | "false" | "0" | "disabled"
        ) {
            return Ok(None);
        }
        let lower = id.to_ascii_lowercase();
        let family = if lower.contains("prompt-guard") {
            GuardFamily::PromptGuard
        } else if lower.contains("safeguard") {
            GuardFamily::Safeguard
        } else {
            return Err(format!(
                "{id:?} is not a supported prompt-attack classifier: use a Llama Prompt Guard 2 model (e.g. {DEFAULT_GUARD_MODEL}), openai/gpt-oss-safeguard-20b, or off"
            ));
        };
        Ok(Some(GuardModel {
            id: id.to_string(),
            family,
        }))
    }
}
