//! Per-caller limits: open watch streams per principal, submissions per second per agent,
//! and how far a `WatchDecisions` reader may fall behind.

use std::num::NonZeroU32;

use super::env::Env;
use super::ConfigError;

/// Open watch streams per principal when `SENTINEL_MAX_WATCHES_PER_AGENT` is unset.
pub const DEFAULT_MAX_WATCHES: usize = 1000;
/// Bytes a `WatchDecisions` stream may have waiting when `SENTINEL_WATCH_MAX_LAG_BYTES` is
/// unset.
pub const DEFAULT_MAX_LAG_BYTES: usize = 4 * 1024 * 1024;
/// Bounds of `SENTINEL_WATCH_MAX_LAG_BYTES`: 64 KiB to 1 GiB.
const MIN_WATCH_LAG_BYTES: u64 = 64 * 1024;
const MAX_WATCH_LAG_BYTES: u64 = 1024 * 1024 * 1024;

pub(super) struct CallerLimits {
    pub max_watches_per_agent: usize,
    pub agent_rate_limit: Option<NonZeroU32>,
    pub watch_max_lag_bytes: usize,
}

pub(super) fn load(
    env: &Env<'_>,
    file_watch_max_lag_bytes: Option<u64>,
) -> Result<CallerLimits, ConfigError> {
    let max_watches_per_agent = env
        .number(
            "SENTINEL_MAX_WATCHES_PER_AGENT",
            None,
            DEFAULT_MAX_WATCHES as u64,
        )?
        .min(usize::MAX as u64) as usize;
    let agent_rate_limit = match env.get("SENTINEL_AGENT_RATE_LIMIT") {
        None => None,
        Some(raw) => Some(raw.parse::<NonZeroU32>().map_err(|_| {
            ConfigError::new(
                "SENTINEL_AGENT_RATE_LIMIT",
                format!("{raw:?} is not a whole number of requests per second above 0 (unset it for no limit)"),
            )
        })?),
    };
    let watch_max_lag_bytes = env.number(
        "SENTINEL_WATCH_MAX_LAG_BYTES",
        file_watch_max_lag_bytes,
        DEFAULT_MAX_LAG_BYTES as u64,
    )?;
    // One event with a full set of labels must fit, or no follower could ever keep up.
    if !(MIN_WATCH_LAG_BYTES..=MAX_WATCH_LAG_BYTES).contains(&watch_max_lag_bytes) {
        return Err(ConfigError::new(
            "SENTINEL_WATCH_MAX_LAG_BYTES",
            format!("must be between {MIN_WATCH_LAG_BYTES} and {MAX_WATCH_LAG_BYTES}"),
        ));
    }
    Ok(CallerLimits {
        max_watches_per_agent,
        agent_rate_limit,
        watch_max_lag_bytes: watch_max_lag_bytes as usize,
    })
}
