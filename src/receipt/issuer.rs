//! Sealing: an intent that is APPROVED gets its receipt, signed with the current key.

use std::time::Duration;

use sentinel_receipt::{payload_hash, Claims, Decider, Jwk, Jwks, ReceiptSigner};

use crate::domain::{Intent, IntentState, Millis};

/// The signing key, the key set published at `/.well-known/jwks.json`, the issuer name and
/// the receipts' lifetime.
#[derive(Debug)]
pub struct Receipts {
    signer: ReceiptSigner,
    jwks: Jwks,
    issuer: String,
    ttl_secs: i64,
}

impl Receipts {
    /// `previous` are the public keys of retired signers, published after the current one.
    pub fn new(
        signer: ReceiptSigner,
        previous: &[[u8; 32]],
        issuer: String,
        ttl: Duration,
    ) -> Self {
        let mut keys = vec![signer.jwk().clone()];
        for public in previous {
            let jwk = Jwk::ed25519(public);
            if keys.iter().all(|k| k.kid != jwk.kid) {
                keys.push(jwk);
            }
        }
        Receipts {
            signer,
            jwks: Jwks { keys },
            issuer,
            ttl_secs: ttl.as_secs().min(i64::MAX as u64) as i64,
        }
    }

    /// A per-process key with the default issuer and lifetime: what a gateway built without
    /// configuration (tests, embedding) signs with.
    pub fn ephemeral() -> Receipts {
        Receipts::new(
            ReceiptSigner::from_seed(&rand::random()),
            &[],
            crate::config::receipt::DEFAULT_RECEIPT_ISSUER.to_string(),
            Duration::from_secs(crate::config::receipt::DEFAULT_RECEIPT_TTL_SECS),
        )
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        self.signer.kid()
    }

    /// `intent` with its receipt when it is APPROVED (issued at `now`); any other state is
    /// returned unchanged and carries no receipt.
    pub fn seal(&self, mut intent: Intent, now: Millis) -> Intent {
        if intent.state != IntentState::Approved {
            intent.receipt = None;
            return intent;
        }
        let iat = now.div_euclid(1000);
        let dby = match &intent.decided_by {
            Some(by) => Decider {
                kind: by.kind.as_str().to_ascii_uppercase(),
                approver: by.approver.clone(),
            },
            None => Decider {
                kind: "SYSTEM".into(),
                approver: String::new(),
            },
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: intent.agent_id.clone(),
            jti: intent.id.to_string(),
            act: intent.action.clone(),
            ph: payload_hash(&intent.payload),
            dby,
            iat,
            exp: iat.saturating_add(self.ttl_secs),
        };
        intent.receipt = Some(self.signer.sign(&claims));
        intent
    }
}
