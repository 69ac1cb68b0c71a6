//! Telnyx webhook signatures: Ed25519 over `telnyx-timestamp|raw body`, 300 s window both ways.
//!
//! The message is built from the timestamp header exactly as received and the raw request
//! bytes, never from re-serialised JSON. Every decode failure or wrong length is a rejection;
//! nothing here panics on input.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};

/// How far the timestamp may be from our clock, in either direction.
pub const TOLERANCE_SECS: i64 = 300;
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook public key is configured (TELNYX_PUBLIC_KEY)")]
    NoKey,
    #[error("the public key is not 32 bytes of Base64")]
    BadKey,
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("telnyx-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("telnyx-timestamp is {0} s away from now (limit {TOLERANCE_SECS} s)")]
    Stale(i64),
    #[error("the signature is not 64 bytes of Base64")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The account's webhook key.
#[derive(Clone)]
pub struct WebhookKey(VerifyingKey);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(..)")
    }
}

impl From<VerifyingKey> for WebhookKey {
    fn from(key: VerifyingKey) -> Self {
        WebhookKey(key)
    }
}

impl WebhookKey {
    /// Decodes the Base64 public key from Mission Control.
    pub fn from_base64(text: &str) -> Result<Self, SignatureError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SignatureError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SignatureError::BadKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(WebhookKey)
            .map_err(|_| SignatureError::BadKey)
    }

    /// Checks one delivery. `now` is Unix seconds (injected so tests can use fixed vectors).
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        let skew = now.saturating_sub(ts);
        if skew.abs() > TOLERANCE_SECS {
            return Err(SignatureError::Stale(skew));
        }
        let raw = STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::Malformed)?;
        let raw: [u8; 64] = raw.try_into().map_err(|_| SignatureError::Malformed)?;
        let signature = Signature::from_bytes(&raw);
        let message = [timestamp.as_bytes(), b"|", body].concat();
        self.0
            .verify_strict(&message, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Verifies with an optional key: no key is a rejection (fail closed).
pub fn verify(
    key: Option<&WebhookKey>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    key.ok_or(SignatureError::NoKey)?
        .verify(timestamp, signature, body, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-generated reference vector: a fixed Ed25519 key signing `timestamp|body`.
    const PUBLIC_KEY: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const TIMESTAMP: &str = "1700000000";
    const SIGNATURE: &str =
        "YldL7Cs1aDFzgIUSxs6ClqPtvzaaOjrZ3vMYXGkCOcPxM0g5dWkNLKNMytuLX69EIDlDAiFDZdk9maNMxMaZAw==";
    const BODY: &str = r#"{"data":{"event_type":"call.answered","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2023-11-14T22:13:20.000000Z","payload":{"call_control_id":"v3:abc","client_state":"eyJyZXEiOiJyLTEyMyJ9"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/telnyx"}}"#;
    const NOW: i64 = 1_700_000_000;

    fn key() -> WebhookKey {
        WebhookKey::from_base64(PUBLIC_KEY).unwrap()
    }

    #[test]
    fn reference_vector_verifies() {
        assert_eq!(BODY.len(), 291);
        assert_eq!(
            key().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), NOW),
            Ok(())
        );
        // Inside the window both ways.
        for now in [NOW - 300, NOW + 300] {
            assert_eq!(
                key().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now),
                Ok(())
            );
        }
    }

    #[test]
    fn tampered_body_fails() {
        let tampered = BODY.replace(r#""attempt":1"#, r#""attempt":2"#);
        assert_eq!(
            key().verify(Some(TIMESTAMP), Some(SIGNATURE), tampered.as_bytes(), NOW),
            Err(SignatureError::Mismatch)
        );
        // A re-serialised body (same JSON, different bytes) fails too: the raw bytes are signed.
        let value: serde_json::Value = serde_json::from_str(BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert!(key()
            .verify(Some(TIMESTAMP), Some(SIGNATURE), &pretty, NOW)
            .is_err());
        // The timestamp is part of the message.
        assert_eq!(
            key().verify(Some("1700000001"), Some(SIGNATURE), BODY.as_bytes(), NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_or_future_timestamps_fail() {
        for now in [NOW + 301, NOW - 301] {
            assert!(matches!(
                key().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now),
                Err(SignatureError::Stale(_))
            ));
        }
    }

    #[test]
    fn missing_or_malformed_input_is_rejected_not_a_panic() {
        let k = key();
        let body = BODY.as_bytes();
        assert_eq!(
            verify(None, Some(TIMESTAMP), Some(SIGNATURE), body, NOW),
            Err(SignatureError::NoKey)
        );
        assert_eq!(
            k.verify(None, Some(SIGNATURE), body, NOW),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            k.verify(Some(TIMESTAMP), None, body, NOW),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            k.verify(Some("soon"), Some(SIGNATURE), body, NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            k.verify(Some(TIMESTAMP), Some("!!"), body, NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            k.verify(Some(TIMESTAMP), Some("AAAA"), body, NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            WebhookKey::from_base64("AAAA").unwrap_err(),
            SignatureError::BadKey
        );
        assert_eq!(
            WebhookKey::from_base64("not base64").unwrap_err(),
            SignatureError::BadKey
        );
    }
}
