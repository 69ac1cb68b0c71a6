//! Who is calling: API keys bound to principals.
//!
//! Keys are configured as SHA-256 hashes (or given raw through the environment and hashed at
//! start-up); the raw key is never stored or logged. A key is bound to one principal: an
//! agent id, or the operator role. With no keys configured the server runs open.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

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

/// SHA-256 of a key, hex encoded: the form keys are configured and compared in.
pub fn hash_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
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
    by_hash: HashMap<String, Principal>,
}

impl KeyRing {
    pub fn new(entries: impl IntoIterator<Item = (String, Principal)>) -> Self {
        KeyRing {
            by_hash: entries
                .into_iter()
                .map(|(h, p)| (h.to_ascii_lowercase(), p))
                .collect(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
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
        self.by_hash
            .get(&hash_key(key))
            .cloned()
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
    fn no_keys_means_open() {
        assert_eq!(KeyRing::default().authenticate(None), Ok(Principal::Open));
    }
}
