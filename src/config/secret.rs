//! Values that must never be printed: secrets read from the environment and PIN hashes.

use sha2::{Digest, Sha256};

/// A secret value: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 of an approver's PIN, read once from its 64 hex characters. The hash of a
/// short PIN is as good as the PIN, so it is never printed, and a PIN is checked against it
/// in constant time.
#[derive(Clone)]
pub struct PinHash([u8; 32]);

impl PinHash {
    /// 64 hex characters, either case; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<PinHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(PinHash(bytes))
    }

    /// The hash of `pin`, as `sha256sum` would print it.
    pub fn of_pin(pin: &str) -> PinHash {
        PinHash(Sha256::digest(pin.as_bytes()).into())
    }

    /// Whether `pin` hashes to this hash; how long it takes says nothing about where they
    /// differ.
    pub fn matches(&self, pin: &str) -> bool {
        *self == Self::of_pin(pin)
    }
}

impl PartialEq for PinHash {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl Eq for PinHash {}

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_hashes_are_read_once_and_checked_against_pins() {
        // sha256("1234")
        let hex = "03ac674216f3e15c761ee1a5e255f067953623c8b388b4459e13f978d7c846f4";
        let hash = PinHash::from_hex(hex).expect("64 hex characters");
        assert_eq!(
            PinHash::from_hex(&hex.to_ascii_uppercase()),
            Some(hash.clone())
        );
        assert!(hash.matches("1234"));
        assert!(!hash.matches("1235") && !hash.matches(""));
        for bad in ["1234", &hex[1..], &format!("{}zz", &hex[2..])] {
            assert_eq!(PinHash::from_hex(bad), None, "{bad}");
        }
        assert!(!format!("{hash:?}").contains("03ac"));
    }
}
