//! Approval receipts: who signs (`SENTINEL_RECEIPT_ISSUER`), for how long a receipt is valid
//! (`SENTINEL_RECEIPT_TTL_SECS`), with which key (`SENTINEL_RECEIPT_KEY`, a secret) and
//! which retired public keys stay published (`SENTINEL_RECEIPT_PREVIOUS_KEYS`).

use std::time::Duration;

use base64::Engine as _;

use super::env::Env;
use super::ConfigError;

pub const DEFAULT_RECEIPT_ISSUER: &str = "sentinel";
pub const DEFAULT_RECEIPT_TTL_SECS: u64 = 300;

/// A 32-byte Ed25519 seed: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiptSeed(pub [u8; 32]);

impl std::fmt::Debug for ReceiptSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptSeed(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct ReceiptConfig {
    /// The `iss` claim.
    pub issuer: String,
    /// `exp - iat` of every receipt.
    pub ttl: Duration,
    /// `None`: generated at start-up (kept in Redis when replicas share one).
    pub key: Option<ReceiptSeed>,
    /// Raw Ed25519 public keys of retired signing keys, still published in the JWKS so the
    /// receipts they signed verify until they expire.
    pub previous_keys: Vec<[u8; 32]>,
}

pub(super) fn load(env: &Env<'_>) -> Result<ReceiptConfig, ConfigError> {
    let issuer = env
        .get("SENTINEL_RECEIPT_ISSUER")
        .unwrap_or_else(|| DEFAULT_RECEIPT_ISSUER.to_string());
    let ttl = Duration::from_secs(env.number(
        "SENTINEL_RECEIPT_TTL_SECS",
        None,
        DEFAULT_RECEIPT_TTL_SECS,
    )?);
    // The value itself is never part of an error: it is a private key.
    let key = env
        .get("SENTINEL_RECEIPT_KEY")
        .map(|raw| {
            key_bytes(&raw).map(ReceiptSeed).ok_or_else(|| {
                ConfigError::new(
                    "SENTINEL_RECEIPT_KEY",
                    "must be a base64 Ed25519 seed of 32 bytes",
                )
            })
        })
        .transpose()?;
    let previous_keys = env
        .get("SENTINEL_RECEIPT_PREVIOUS_KEYS")
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    key_bytes(k).ok_or_else(|| {
                        ConfigError::new(
                            "SENTINEL_RECEIPT_PREVIOUS_KEYS",
                            format!("{k:?} is not a base64 Ed25519 public key of 32 bytes"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(ReceiptConfig {
        issuer,
        ttl,
        key,
        previous_keys,
    })
}

/// 32 bytes in standard or URL-safe base64, padded or not.
fn key_bytes(raw: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = raw.trim().trim_end_matches('=');
    let bytes = STANDARD
        .decode(raw.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, refused};
    use super::*;

    #[test]
    fn defaults_and_bad_keys() {
        let c = load(&[]).unwrap().receipt;
        assert_eq!(
            (c.issuer.as_str(), c.ttl),
            ("sentinel", Duration::from_secs(300))
        );
        assert!(c.key.is_none() && c.previous_keys.is_empty());

        let seed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let c = load(&[
            ("SENTINEL_RECEIPT_KEY", &seed),
            ("SENTINEL_RECEIPT_ISSUER", "sentinel-eu-1"),
            ("SENTINEL_RECEIPT_PREVIOUS_KEYS", &format!("{seed}, {seed}")),
        ])
        .unwrap();
        assert_eq!(c.receipt.key, Some(ReceiptSeed([9; 32])));
        assert_eq!(c.receipt.previous_keys.len(), 2);
        assert!(!format!("{c:?}").contains(&seed));

        let cases = [
            ("SENTINEL_RECEIPT_KEY", "c2hvcnQ="),
            ("SENTINEL_RECEIPT_KEY", "not base64 at all!"),
            ("SENTINEL_RECEIPT_TTL_SECS", "0"),
            ("SENTINEL_RECEIPT_TTL_SECS", "five"),
            ("SENTINEL_RECEIPT_PREVIOUS_KEYS", "abc"),
        ];
        for ((var, value), e) in cases.iter().zip(refused(&cases)) {
            assert!(!e.message.contains(value) || *var != "SENTINEL_RECEIPT_KEY");
        }
    }
}
