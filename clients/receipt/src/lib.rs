//! Sentinel's approval receipts, shared by the gateway (which signs them), the Rust client
//! and the CLI (which verify them).
//!
//! A receipt is a compact JWS (`alg: EdDSA`, Ed25519, header `kid`) over [`Claims`]:
//! `iss sub jti act ph dby iat exp`. `ph` is the lowercase hex SHA-256 of the payload in
//! RFC 8785 (JCS) canonical form ([`payload_hash`]). Public keys are published as a JWKS of
//! RFC 8037 OKP keys ([`Jwks`]), each `kid` the key's RFC 7638 thumbprint.
//!
//! # Layout
//!
//! - `claims.rs`: the claims and the decider
//! - `canonical.rs`: the payload hash, and the payload as a protobuf `Struct`
//! - `jwk.rs`: JWK / JWKS, thumbprints
//! - `sign.rs`: [`ReceiptSigner`], the compact serialisation
//! - `verify.rs`: [`verify_receipt`] and its failure reasons
//! - `cache.rs`: [`ReceiptCache`], single use by `jti`

#![forbid(unsafe_code)]

mod cache;
mod canonical;
mod claims;
mod jwk;
mod sign;
mod verify;

pub use cache::ReceiptCache;
pub use canonical::{canonical_json, json_to_struct, json_to_value, payload_hash};
pub use claims::{Claims, Decider};
#[cfg(feature = "fetch")]
pub use jwk::fetch_jwks;
pub use jwk::{Jwk, Jwks, KeyError};
pub use sign::ReceiptSigner;
pub use verify::{
    verify_receipt, verify_receipt_with, Expected, InvalidReceipt, Options, Reason, Verified,
    DEFAULT_LEEWAY_SECS,
};

/// Unpadded base64url, the JOSE encoding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
