//! Who is calling: API keys bound to principals.
//!
//! Keys are configured as SHA-256 hashes (or given raw through the environment and hashed at
//! start-up); the raw key is never stored or logged. A key is bound to one principal: an
//! agent id, or the operator role. With no keys configured the server runs open.
//!
//! A presented key is hashed and compared with every configured hash in constant time
//! (`subtle`), all of them every time, so neither the time taken nor a hash-table probe says
//! how close a guess came or which key it resembled.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// May submit as this agent id and see, watch and cancel only its own intents.
    Agent(String),
    /// May resolve, list everything and watch all. The string is the operator's name.
    Operator(String),
    /// No keys are configured: every caller has every right.
    Open,
}

impl Principal {
    /// Parses `agent:NAME` or `operator:NAME`.
    pub fn parse(s: &str) -> Option<Principal> {
        let (kind, name) = s.split_once(':')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        match kind.trim() {
            "agent" => Some(Principal::Agent(name.to_string())),
            "operator" => Some(Principal::Operator(name.to_string())),
            _ => None,
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator(_) | Principal::Open)
    }

    /// Whether this caller may act for (submit as, see, cancel for) `agent_id`.
    pub fn may_act_for(&self, agent_id: &str) -> bool {
        match self {
            Principal::Agent(own) => own == agent_id,
            Principal::Operator(_) | Principal::Open => true,
        }
    }

    /// The agent this caller is restricted to, if any.
    pub fn agent_scope(&self) -> Option<&str> {
        match self {
            Principal::Agent(a) => Some(a),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Principal::Agent(n) | Principal::Operator(n) => n,
            Principal::Open => "anonymous",
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Agent(n) => write!(f, "agent:{n}"),
            Principal::Operator(n) => write!(f, "operator:{n}"),
            Principal::Open => f.write_str("open"),
        }
    }
}

/// SHA-256 of a key, hex encoded: the form keys are configured in.
pub fn hash_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// Whether two secrets (or their hashes) are equal, in time that depends only on their
/// lengths. For API key hashes, one-time codes and PIN hashes.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credential: send 'authorization: Bearer <key>' or 'x-api-key'")]
    Missing,
    #[error("unknown API key")]
    Unknown,
}

/// The configured keys. Empty means open mode.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    /// SHA-256 digests and who they stand for. Hashes that are not 64 hex digits (config
    /// refuses them) are kept as entries no key can match, so the ring is never open by
    /// mistake.
    keys: Vec<(Option<[u8; 32]>, Principal)>,
}

impl KeyRing {
    pub fn new(entries: impl IntoIterator<Item = (String, Principal)>) -> Self {
        KeyRing {
            keys: entries
                .into_iter()
                .map(|(h, p)| {
                    let mut digest = [0u8; 32];
                    let parsed = hex::decode_to_slice(h.trim(), &mut digest).ok();
                    (parsed.map(|()| digest), p)
                })
                .collect(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Authenticates a presented key (`None` when the caller sent none).
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal, AuthError> {
        if self.is_open() {
            return Ok(Principal::Open);
        }
        let key = presented
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Missing)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every entry is compared; the index of the match is taken without branching on it.
        let mut index = 0u32;
        let mut hit_any = subtle::Choice::from(0);
        for (i, (digest, _)) in self.keys.iter().enumerate() {
            let Some(digest) = digest else { continue };
            let hit = digest.ct_eq(&presented);
            index.conditional_assign(&(i as u32), hit);
            hit_any |= hit;
        }
        bool::from(hit_any)
            .then(|| self.keys.get(index as usize))
            .flatten()
            .map(|(_, p)| p.clone())
            .ok_or(AuthError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_bind_to_principals() {
        let ring = KeyRing::new([
            (hash_key("k1"), Principal::Agent("billing".into())),
            (hash_key("k2"), Principal::Operator("alice".into())),
        ]);
        assert_eq!(
            ring.authenticate(Some("k1")),
            Ok(Principal::Agent("billing".into()))
        );
        assert_eq!(
            ring.authenticate(Some("k2")),
            Ok(Principal::Operator("alice".into()))
        );
        assert_eq!(ring.authenticate(Some("k3")), Err(AuthError::Unknown));
        assert_eq!(ring.authenticate(None), Err(AuthError::Missing));
        assert!(!Principal::Agent("billing".into()).may_act_for("other"));
    }

    #[test]
    fn upper_case_hashes_match_and_bad_ones_never_do() {
        let ring = KeyRing::new([
            (hash_key("k1").to_uppercase(), Principal::Agent("a".into())),
            ("not-hex".into(), Principal::Operator("o".into())),
        ]);
        assert_eq!(
            ring.authenticate(Some("k1")),
            Ok(Principal::Agent("a".into()))
        );
        assert_eq!(ring.authenticate(Some("not-hex")), Err(AuthError::Unknown));
        assert!(!ring.is_open());
        assert!(secret_eq(b"123456", b"123456"));
        assert!(!secret_eq(b"123456", b"123457"));
        assert!(!secret_eq(b"12345", b"123456"));
    }

    #[test]
    fn no_keys_means_open() {
        assert_eq!(KeyRing::default().authenticate(None), Ok(Principal::Open));
    }
}
