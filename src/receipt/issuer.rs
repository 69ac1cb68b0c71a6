//! Sealing: an intent that is APPROVED gets its receipt, signed with the current key.

use std::sync::OnceLock;
use std::time::Duration;

use sentinel_receipt::{payload_hash, Claims, Decider, Jwk, Jwks, ReceiptSigner};

use crate::domain::{Intent, IntentState, Millis};

/// An approval cannot be sealed: the shared signing key has not been loaded yet.
#[derive(Debug, thiserror::Error)]
#[error("the receipt signing key is not loaded yet (waiting for redis)")]
pub struct KeyNotLoaded;

/// The signing key (set once: at start-up, or when Redis first answers), the retired public
/// keys still published, the issuer name and the receipts' lifetime.
#[derive(Debug)]
pub struct Receipts {
    signer: OnceLock<ReceiptSigner>,
    previous: Vec<Jwk>,
    issuer: String,
    ttl_secs: i64,
}

impl Receipts {
    /// Without a signer yet: [`Receipts::install`] sets it. `previous` are the public keys of
    /// retired signers, published after the current one.
    pub fn new(previous: &[[u8; 32]], issuer: String, ttl: Duration) -> Self {
        Receipts {
            signer: OnceLock::new(),
            previous: previous.iter().map(Jwk::ed25519).collect(),
            issuer,
            ttl_secs: ttl.as_secs().min(i64::MAX as u64) as i64,
        }
    }

    /// Sets the signing key; a second call keeps the first key.
    pub fn install(&self, signer: ReceiptSigner) -> &ReceiptSigner {
        self.signer.get_or_init(|| signer)
    }

    /// A per-process key with the default issuer and lifetime: what a gateway built without
    /// configuration (tests, embedding) signs with.
    pub fn ephemeral() -> Receipts {
        let receipts = Receipts::new(
            &[],
            crate::config::receipt::DEFAULT_RECEIPT_ISSUER.to_string(),
            Duration::from_secs(crate::config::receipt::DEFAULT_RECEIPT_TTL_SECS),
        );
        receipts.install(ReceiptSigner::from_seed(&rand::random()));
        receipts
    }

    pub fn is_ready(&self) -> bool {
        self.signer.get().is_some()
    }

    /// The current key first, then the retired ones (a key listed twice is listed once).
    pub fn jwks(&self) -> Jwks {
        let mut keys: Vec<Jwk> = self
            .signer
            .get()
            .map(|s| s.jwk().clone())
            .into_iter()
            .collect();
        for jwk in &self.previous {
            if keys.iter().all(|k| k.kid != jwk.kid) {
                keys.push(jwk.clone());
            }
        }
        Jwks { keys }
    }

    /// `intent` with its receipt when it is APPROVED (issued at `now`); any other state is
    /// returned unchanged and carries no receipt. An approval without a loaded key is an
    /// error, never an unsigned approval.
    pub fn seal(&self, mut intent: Intent, now: Millis) -> Result<Intent, KeyNotLoaded> {
        if intent.state != IntentState::Approved {
            intent.receipt = None;
            return Ok(intent);
        }
        let signer = self.signer.get().ok_or(KeyNotLoaded)?;
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
        intent.receipt = Some(signer.sign(&claims));
        Ok(intent)
    }
}
