//! Signing: the compact JWS serialisation, `b64url(header) . b64url(claims) . b64url(sig)`,
//! Ed25519 over the ASCII of the first two parts (RFC 7515, RFC 8037).

use ed25519_dalek::{Signer as _, SigningKey};

use crate::{b64url, Claims, Jwk};

/// An Ed25519 signing key with its `kid`. The seed never leaves it (no `Debug` of it).
pub struct ReceiptSigner {
    key: SigningKey,
    jwk: Jwk,
}

impl ReceiptSigner {
    /// From the 32-byte Ed25519 seed (the private key).
    pub fn from_seed(seed: &[u8; 32]) -> ReceiptSigner {
        let key = SigningKey::from_bytes(seed);
        let jwk = Jwk::ed25519(&key.verifying_key().to_bytes());
        ReceiptSigner { key, jwk }
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half, as published in the JWKS.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "kid": self.jwk.kid, "typ": "JWT"});
        // Serialising these plain structures cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", b64url(&header), b64url(&body));
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&signature.to_bytes()))
    }
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}
