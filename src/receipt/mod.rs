//! Approval receipts: the gateway signs every APPROVED intent before it is stored, so
//! `SubmitIntent`, `GetIntent` and `WatchDecision` on any replica return the same receipt.
//! The format (claims, canonical payload hash, JWS, JWKS, verification) is the
//! `sentinel-receipt` crate shared with the clients; this module owns the keys
//! (`keys.rs`: configured, shared through Redis, or generated) and the sealing of intents
//! (`issuer.rs`). Below the gateway; it imports the domain and the Redis handle only.

mod issuer;
mod keys;

pub use issuer::Receipts;
pub use keys::open_receipts;
