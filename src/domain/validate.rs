//! Input validation: turns what an agent sent into an [`IntentDraft`] or an error naming
//! the field. Parse, don't validate: nothing past this point re-checks sizes or shapes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::IntentDraft;

/// Bounds on what one submission may carry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Serialised JSON size of the payload.
    pub max_payload_bytes: usize,
    /// Nesting depth of objects and lists in the payload.
    pub max_depth: usize,
    /// Any one string in the payload.
    pub max_string_bytes: usize,
    pub max_reasoning_bytes: usize,
    pub max_labels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 64 * 1024,
            max_depth: 32,
            max_string_bytes: 16 * 1024,
            max_reasoning_bytes: 16 * 1024,
            max_labels: 64,
        }
    }
}

/// A submission as it arrives (from gRPC, the CLI, or a policy test corpus).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitInput {
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub idempotency_key: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub module: String,
}

/// Bad input, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

const MAX_ID_BYTES: usize = 128;
const MAX_LABEL_KEY_BYTES: usize = 63;
const MAX_LABEL_VALUE_BYTES: usize = 256;

/// Identifiers (agent ids, actions, modules, idempotency keys) are short, printable and
/// free of whitespace, so they are safe in store keys, logs and phone summaries.
pub fn check_identifier(field: &str, value: &str, required: bool) -> Result<(), ValidationError> {
    if value.is_empty() {
        return if required {
            Err(invalid(field, "is required"))
        } else {
            Ok(())
        };
    }
    if value.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!("is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '@')))
    {
        return Err(invalid(
            field,
            format!("contains {c:?}; use letters, digits and _ - . : / @"),
        ));
    }
    Ok(())
}

impl SubmitInput {
    pub fn into_draft(self, limits: &Limits) -> Result<IntentDraft, ValidationError> {
        check_identifier("agent_id", &self.agent_id, true)?;
        check_identifier("action", &self.action, true)?;
        check_identifier("module", &self.module, false)?;
        check_identifier("idempotency_key", &self.idempotency_key, false)?;
        if self.reasoning.len() > limits.max_reasoning_bytes {
            return Err(invalid(
                "reasoning",
                format!(
                    "is {} bytes; the limit is {}",
                    self.reasoning.len(),
                    limits.max_reasoning_bytes
                ),
            ));
        }
        if self.labels.len() > limits.max_labels {
            return Err(invalid(
                "labels",
                format!("more than {} labels", limits.max_labels),
            ));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > MAX_LABEL_KEY_BYTES {
                return Err(invalid(
                    format!("labels[{k}]"),
                    format!("key must be 1-{MAX_LABEL_KEY_BYTES} bytes"),
                ));
            }
            if v.len() > MAX_LABEL_VALUE_BYTES {
                return Err(invalid(
                    format!("labels[{k}]"),
                    format!("value is longer than {MAX_LABEL_VALUE_BYTES} bytes"),
                ));
            }
        }
        let payload = self
            .payload
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        if !payload.is_object() {
            return Err(invalid("payload", "must be an object"));
        }
        check_value("payload", &payload, 1, limits)?;
        let size = serde_json::to_vec(&payload)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > limits.max_payload_bytes {
            return Err(invalid(
                "payload",
                format!("is {size} bytes; the limit is {}", limits.max_payload_bytes),
            ));
        }
        Ok(IntentDraft {
            agent_id: self.agent_id,
            action: self.action,
            module: (!self.module.is_empty()).then_some(self.module),
            payload,
            reasoning: self.reasoning,
            labels: self.labels,
            idempotency_key: (!self.idempotency_key.is_empty()).then_some(self.idempotency_key),
        })
    }
}

fn check_value(
    path: &str,
    value: &serde_json::Value,
    depth: usize,
    limits: &Limits,
) -> Result<(), ValidationError> {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if depth > limits.max_depth {
                return Err(invalid(
                    path,
                    format!("nesting is deeper than {}", limits.max_depth),
                ));
            }
            for (k, v) in map {
                if k.len() > limits.max_string_bytes {
                    return Err(invalid(
                        path,
                        format!(
                            "a field name is longer than {} bytes",
                            limits.max_string_bytes
                        ),
                    ));
                }
                check_value(&format!("{path}.{k}"), v, depth + 1, limits)?;
            }
        }
        Value::Array(items) => {
            if depth > limits.max_depth {
                return Err(invalid(
                    path,
                    format!("nesting is deeper than {}", limits.max_depth),
                ));
            }
            for (i, v) in items.iter().enumerate() {
                check_value(&format!("{path}[{i}]"), v, depth + 1, limits)?;
            }
        }
        Value::String(s) if s.len() > limits.max_string_bytes => {
            return Err(invalid(
                path,
                format!(
                    "string is {} bytes; the limit is {}",
                    s.len(),
                    limits.max_string_bytes
                ),
            ));
        }
        Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
            return Err(invalid(path, "number is not finite"));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(payload: serde_json::Value) -> SubmitInput {
        SubmitInput {
            agent_id: "bot".into(),
            action: "PAY_INVOICE".into(),
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn names_the_missing_field() {
        let mut i = input(json!({}));
        i.agent_id.clear();
        assert_eq!(
            i.into_draft(&Limits::default()).unwrap_err().field,
            "agent_id"
        );
        let mut i = input(json!({}));
        i.action.clear();
        assert_eq!(
            i.into_draft(&Limits::default()).unwrap_err().field,
            "action"
        );
    }

    #[test]
    fn rejects_deep_nesting_and_big_payloads() {
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        let err = input(deep).into_draft(&Limits::default()).unwrap_err();
        assert!(err.field.starts_with("payload"), "{err}");
        assert!(err.message.contains("deeper than 32"), "{err}");

        let big: Vec<String> = (0..10).map(|_| "x".repeat(10_000)).collect();
        let err = input(json!({ "blob": big }))
            .into_draft(&Limits::default())
            .unwrap_err();
        assert_eq!(err.field, "payload");

        let err = input(json!({ "s": "y".repeat(20_000) }))
            .into_draft(&Limits::default())
            .unwrap_err();
        assert_eq!(err.field, "payload.s");
    }

    #[test]
    fn accepts_a_normal_intent() {
        let d = input(json!({"amount": 10, "vendor": "AWS"}))
            .into_draft(&Limits::default())
            .unwrap();
        assert_eq!(d.module, None);
        assert_eq!(d.idempotency_key, None);
    }
}
