//! What a receipt says: who was approved to do what, with which payload, decided by whom,
//! valid from when until when.

use serde::{Deserialize, Serialize};

/// Who or what approved: `kind` is `POLICY`, `SCORER` or `HUMAN`; `approver` names the human
/// (empty for policy and scorer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decider {
    pub kind: String,
    #[serde(default)]
    pub approver: String,
}

/// The signed claims. Field names are the wire names (docs/receipts.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The gateway's configured name (`SENTINEL_RECEIPT_ISSUER`).
    pub iss: String,
    /// The agent the intent was submitted for.
    pub sub: String,
    /// The intent id: one receipt per intent, the unit of single use.
    pub jti: String,
    /// The approved action.
    pub act: String,
    /// Lowercase hex SHA-256 of the payload's RFC 8785 canonical JSON.
    pub ph: String,
    pub dby: Decider,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}
