//! The JSON written to Redis and published to replicas, and the errors for what cannot be
//! read back.

use super::super::StoreError;
use crate::domain::{EventKind, Intent, Millis};

/// The smallest UUIDv7 of millisecond `ms`: every id created before `ms` sorts below it, so
/// `ZREMRANGEBYLEX index - (<this>` drops exactly the index entries older than `ms`.
pub(super) fn min_uuid_v7(ms: Millis) -> String {
    let ms = u64::try_from(ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("cannot encode", e))
}

pub(super) fn parse_intent(json: &[u8]) -> Result<Intent, StoreError> {
    serde_json::from_slice(json).map_err(|e| corrupt("stored intent", e))
}

/// `DecisionEvent` JSON around an already encoded slim intent (see [`crate::domain::slim`]).
pub(super) fn event_json(
    kind: EventKind,
    intent_json: &str,
    detail: &str,
    at: Millis,
) -> Result<String, StoreError> {
    let kind = match kind {
        EventKind::Snapshot => "snapshot",
        EventKind::Transition => "transition",
        EventKind::Progress => "progress",
    };
    Ok(format!(
        r#"{{"kind":"{kind}","detail":{},"at":{at},"intent":{intent_json}}}"#,
        to_json(&detail)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_is_a_decision_event() {
        let json = r#"{"id":"0190a8f0-0000-7000-8000-000000000000"}"#;
        let raw = event_json(EventKind::Progress, json, "calling \"bob\"", 5).unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["kind"], "progress");
        assert_eq!(v["detail"], "calling \"bob\"");
        assert_eq!(v["intent"]["id"], "0190a8f0-0000-7000-8000-000000000000");
    }
}
