//! Verification: the signature under the key named by `kid`, the expiry, and that the
//! receipt names this agent, action and payload; optionally single use through a
//! [`ReceiptCache`]. Each failure has one [`Reason`], checked in this order: malformed,
//! unknown_kid, bad_signature, expired, agent_mismatch, action_mismatch, payload_mismatch,
//! replayed / cache_full.

use base64::Engine as _;
use ed25519_dalek::Signature;

use crate::{payload_hash, Claims, Jwks, ReceiptCache};

/// Seconds of clock skew tolerated on `exp` and `iat`.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    BadSignature,
    Expired,
    PayloadMismatch,
    ActionMismatch,
    AgentMismatch,
    UnknownKid,
    Replayed,
    Malformed,
    CacheFull,
}

impl Reason {
    /// The stable spelling shared with the Python SDK and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::PayloadMismatch => "payload_mismatch",
            Reason::ActionMismatch => "action_mismatch",
            Reason::AgentMismatch => "agent_mismatch",
            Reason::UnknownKid => "unknown_kid",
            Reason::Replayed => "replayed",
            Reason::Malformed => "malformed",
            Reason::CacheFull => "cache_full",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The receipt does not prove this approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct InvalidReceipt {
    pub reason: Reason,
    pub message: String,
}

impl InvalidReceipt {
    pub fn new(reason: Reason, message: impl Into<String>) -> InvalidReceipt {
        InvalidReceipt {
            reason,
            message: message.into(),
        }
    }
}

/// What the executor is about to do: the receipt must name exactly this.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub agent_id: &'a str,
    pub action: &'a str,
    pub payload: &'a serde_json::Value,
}

/// The clock, the leeway and the single-use cache; the default reads the system clock,
/// allows [`DEFAULT_LEEWAY_SECS`] and remembers nothing.
#[derive(Default, Clone, Copy)]
pub struct Options<'a> {
    /// Seconds since the Unix epoch; `None`: now.
    pub now: Option<i64>,
    pub leeway: Option<i64>,
    pub cache: Option<&'a ReceiptCache>,
}

/// A receipt that proved the approval: its claims and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claims: Claims,
    pub kid: String,
}

/// [`verify_receipt_with`] with the default [`Options`].
pub fn verify_receipt(
    receipt: &str,
    keys: &Jwks,
    expected: &Expected<'_>,
) -> Result<Verified, InvalidReceipt> {
    verify_receipt_with(receipt, keys, expected, &Options::default())
}

pub fn verify_receipt_with(
    receipt: &str,
    keys: &Jwks,
    expected: &Expected<'_>,
    options: &Options<'_>,
) -> Result<Verified, InvalidReceipt> {
    let malformed = |m: &str| InvalidReceipt::new(Reason::Malformed, m);
    let parts: Vec<&str> = receipt.trim().split('.').collect();
    let [header, body, signature] = parts[..] else {
        return Err(malformed("a compact JWS has three parts"));
    };
    let header: serde_json::Value = json_part(header, "header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
        return Err(malformed("header alg is not EdDSA"));
    }
    if header.get("crit").is_some() {
        return Err(malformed("critical header extensions are not supported"));
    }
    let kid = match header.get("kid").and_then(|k| k.as_str()) {
        Some(kid) if !kid.is_empty() => kid.to_string(),
        _ => return Err(malformed("header kid is missing")),
    };
    let signature = b64(signature, "signature")?;
    let signature = Signature::from_slice(&signature)
        .map_err(|_| malformed("the signature is not 64 bytes"))?;

    let key = keys
        .find(&kid)
        .ok_or_else(|| InvalidReceipt::new(Reason::UnknownKid, format!("no key with kid {kid:?}")))?
        .verifying_key()
        .map_err(|e| InvalidReceipt::new(Reason::UnknownKid, e.0))?;
    let signing_input = &receipt.trim()[..receipt.trim().rfind('.').unwrap_or(0)];
    key.verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| InvalidReceipt::new(Reason::BadSignature, "the signature does not verify"))?;

    let claims: Claims = json_part(body, "claims")?;
    let now = options.now.unwrap_or_else(unix_now);
    let leeway = options.leeway.unwrap_or(DEFAULT_LEEWAY_SECS);
    if now > claims.exp.saturating_add(leeway) {
        return Err(InvalidReceipt::new(
            Reason::Expired,
            format!("expired at {}", claims.exp),
        ));
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(malformed(&format!("issued in the future ({})", claims.iat)));
    }
    if claims.sub != expected.agent_id {
        return Err(InvalidReceipt::new(
            Reason::AgentMismatch,
            format!("issued to {:?}, not {:?}", claims.sub, expected.agent_id),
        ));
    }
    if claims.act != expected.action {
        return Err(InvalidReceipt::new(
            Reason::ActionMismatch,
            format!("approves {:?}, not {:?}", claims.act, expected.action),
        ));
    }
    if claims.ph != payload_hash(expected.payload) {
        return Err(InvalidReceipt::new(
            Reason::PayloadMismatch,
            "approves another payload",
        ));
    }
    if let Some(cache) = options.cache {
        cache.claim(&claims, now)?;
    }
    Ok(Verified { claims, kid })
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, InvalidReceipt> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.as_bytes())
        .map_err(|_| {
            InvalidReceipt::new(
                Reason::Malformed,
                format!("{what} is not unpadded base64url"),
            )
        })
}

fn json_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, InvalidReceipt> {
    serde_json::from_slice(&b64(part, what)?)
        .map_err(|e| InvalidReceipt::new(Reason::Malformed, format!("{what}: {e}")))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decider, ReceiptSigner};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            iss: "sentinel".into(),
            sub: "billing-bot".into(),
            jti: "0190f5c2-7d1e-7000-8000-000000000001".into(),
            act: "PAY_INVOICE".into(),
            ph: payload_hash(&payload()),
            dby: Decider {
                kind: "HUMAN".into(),
                approver: "alice".into(),
            },
            iat: NOW - 10,
            exp: NOW + 290,
        }
    }

    fn payload() -> serde_json::Value {
        json!({"vendor": "AWS", "amount": 420})
    }

    fn check(
        receipt: &str,
        keys: &Jwks,
        payload: &serde_json::Value,
        action: &str,
        agent: &str,
        cache: Option<&ReceiptCache>,
    ) -> Result<Verified, Reason> {
        let expected = Expected {
            agent_id: agent,
            action,
            payload,
        };
        let options = Options {
            now: Some(NOW),
            leeway: None,
            cache,
        };
        verify_receipt_with(receipt, keys, &expected, &options).map_err(|e| e.reason)
    }

    fn ok(receipt: &str, keys: &Jwks) -> Result<Verified, Reason> {
        check(
            receipt,
            keys,
            &payload(),
            "PAY_INVOICE",
            "billing-bot",
            None,
        )
    }

    #[test]
    fn every_failure_has_its_reason() {
        let signer = ReceiptSigner::from_seed(&[1; 32]);
        let keys = Jwks {
            keys: vec![signer.jwk().clone()],
        };
        let receipt = signer.sign(&claims());
        let verified = ok(&receipt, &keys).unwrap();
        assert_eq!(
            (verified.kid.as_str(), verified.claims),
            (signer.kid(), claims())
        );

        let other = ReceiptSigner::from_seed(&[2; 32]);
        assert_eq!(
            ok(
                &receipt,
                &Jwks {
                    keys: vec![other.jwk().clone()]
                }
            ),
            Err(Reason::UnknownKid)
        );
        let mut wrong_key = other.jwk().clone();
        wrong_key.kid = signer.kid().to_string();
        assert_eq!(
            ok(
                &receipt,
                &Jwks {
                    keys: vec![wrong_key]
                }
            ),
            Err(Reason::BadSignature)
        );

        let (head, _) = receipt.rsplit_once('.').unwrap();
        let (header, _) = head.split_once('.').unwrap();
        let forged = crate::b64url(
            &serde_json::to_vec(&Claims {
                act: "DROP_TABLE".into(),
                ..claims()
            })
            .unwrap(),
        );
        let sig = receipt.rsplit_once('.').unwrap().1;
        assert_eq!(
            check(
                &format!("{header}.{forged}.{sig}"),
                &keys,
                &payload(),
                "DROP_TABLE",
                "billing-bot",
                None
            ),
            Err(Reason::BadSignature)
        );

        let expired = signer.sign(&Claims {
            exp: NOW - 31,
            ..claims()
        });
        assert_eq!(ok(&expired, &keys), Err(Reason::Expired));
        let within_leeway = signer.sign(&Claims {
            exp: NOW - 5,
            ..claims()
        });
        assert!(ok(&within_leeway, &keys).is_ok());

        assert_eq!(
            check(
                &receipt,
                &keys,
                &json!({"vendor": "AWS", "amount": 421}),
                "PAY_INVOICE",
                "billing-bot",
                None
            ),
            Err(Reason::PayloadMismatch)
        );
        assert_eq!(
            check(
                &receipt,
                &keys,
                &payload(),
                "EXPORT_CSV",
                "billing-bot",
                None
            ),
            Err(Reason::ActionMismatch)
        );
        assert_eq!(
            check(&receipt, &keys, &payload(), "PAY_INVOICE", "ops-bot", None),
            Err(Reason::AgentMismatch)
        );

        for bad in ["not-a-jws", "a.b", "e30.e30.@@@", &format!("{head}.c2ln")] {
            assert_eq!(ok(bad, &keys), Err(Reason::Malformed), "{bad}");
        }
    }

    #[test]
    fn a_cache_accepts_each_receipt_once() {
        let signer = ReceiptSigner::from_seed(&[1; 32]);
        let keys = Jwks {
            keys: vec![signer.jwk().clone()],
        };
        let cache = ReceiptCache::new(2);
        let first = signer.sign(&claims());
        let run = |r: &str| {
            check(
                r,
                &keys,
                &payload(),
                "PAY_INVOICE",
                "billing-bot",
                Some(&cache),
            )
        };
        assert!(run(&first).is_ok());
        assert_eq!(run(&first), Err(Reason::Replayed));
        assert!(run(&signer.sign(&Claims {
            jti: "second".into(),
            ..claims()
        }))
        .is_ok());
        assert_eq!(
            run(&signer.sign(&Claims {
                jti: "third".into(),
                ..claims()
            })),
            Err(Reason::CacheFull)
        );
        assert_eq!(cache.len(), 2);
    }
}
