//! API keys: hashes from the file's `[auth]` table and plain keys from `SENTINEL_API_KEYS`,
//! merged into one [`KeyRing`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::env::Env;
use super::ConfigError;
use crate::auth::{hash_key, KeyRing, Principal};

/// `[auth]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileAuth {
    keys: Vec<FileKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    /// `agent:NAME` or `operator:NAME`.
    principal: String,
    /// Hex SHA-256 of the key (`sentinel keys hash` prints it).
    sha256: String,
}

pub(super) fn load(env: &Env<'_>, file: FileAuth) -> Result<KeyRing, ConfigError> {
    let mut keys = BTreeMap::new();
    for (i, k) in file.keys.into_iter().enumerate() {
        let name = format!("auth.keys[{i}]");
        let principal = Principal::parse(&k.principal).ok_or_else(|| {
            ConfigError::new(&name, "principal must be 'agent:NAME' or 'operator:NAME'")
        })?;
        let hash = k.sha256.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ConfigError::new(&name, "sha256 must be 64 hex characters"));
        }
        keys.insert(hash, principal);
    }
    let Some(raw) = env.get("SENTINEL_API_KEYS") else {
        return Ok(KeyRing::new(keys));
    };
    let entry_error = |i: usize, what: &str| {
        ConfigError::new("SENTINEL_API_KEYS", format!("entry {}{what}", i + 1))
    };
    for (i, entry) in raw
        .split([';', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (principal, key) = entry
            .rsplit_once('=')
            .ok_or_else(|| entry_error(i, " must be 'agent:NAME=KEY' or 'operator:NAME=KEY'"))?;
        let principal = Principal::parse(principal)
            .ok_or_else(|| entry_error(i, ": principal must be 'agent:NAME' or 'operator:NAME'"))?;
        if key.trim().len() < 16 {
            return Err(entry_error(i, ": keys must be at least 16 characters"));
        }
        keys.insert(hash_key(key.trim()), principal);
    }
    Ok(KeyRing::new(keys))
}
