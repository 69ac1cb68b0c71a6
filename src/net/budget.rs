//! How many connections each listener may hold, from the process's descriptor limit.
//!
//! Every accepted connection costs one descriptor, and so does everything else the process
//! does: Redis connections, Telnyx and LLM HTTP clients, the listeners themselves, log files,
//! the runtime's epoll and event descriptors. A reserve is kept for those so that a flood of
//! client connections can never starve them. The rest is split between the listeners:
//!
//! ```text
//! reserve = max(128, nofile / 10)
//! grpc    = (nofile - reserve) * 3 / 4
//! http    = (nofile - reserve) - grpc
//! ```
//!
//! With the common 1,024 limit: reserve 128, gRPC 672, HTTP 224. At start-up the soft limit is
//! first raised to the hard limit, so a container's `nofile` hard limit is what counts.

use anyhow::Context as _;
use tracing::{info, warn};

/// Descriptors kept for everything that is not an accepted client connection.
pub const MIN_RESERVE: u64 = 128;
/// Below this many connections per listener the process cannot serve sensibly.
const MIN_PER_LISTENER: u64 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE` the process runs with.
    pub nofile: u64,
    pub reserve: u64,
    /// Concurrent connections the gRPC listener holds.
    pub grpc: usize,
    /// Concurrent connections the HTTP listener holds.
    pub http: usize,
}

impl Budget {
    /// The split for a descriptor limit of `nofile`; `None` when it is too small to serve.
    pub fn from_nofile(nofile: u64) -> Option<Budget> {
        let reserve = MIN_RESERVE.max(nofile / 10);
        let available = nofile.checked_sub(reserve)?;
        let grpc = available / 4 * 3 + (available % 4) * 3 / 4;
        let http = available - grpc;
        if http < MIN_PER_LISTENER {
            return None;
        }
        Some(Budget {
            nofile,
            reserve,
            grpc: usize::try_from(grpc).unwrap_or(usize::MAX),
            http: usize::try_from(http).unwrap_or(usize::MAX),
        })
    }

    /// Raises the soft descriptor limit to the hard one and splits what the process gets.
    pub fn for_this_process() -> anyhow::Result<Budget> {
        let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot raise RLIMIT_NOFILE; using the current soft limit");
                rlimit::Resource::NOFILE
                    .get()
                    .context("RLIMIT_NOFILE: cannot read the descriptor limit")?
                    .0
            }
        };
        let budget = Budget::from_nofile(nofile).with_context(|| {
            format!(
                "RLIMIT_NOFILE: the limit {nofile} leaves too few descriptors for connections (raise `ulimit -n` to at least 256)"
            )
        })?;
        info!(
            nofile,
            reserve = budget.reserve,
            grpc_connections = budget.grpc,
            http_connections = budget.http,
            "connection limits from the descriptor limit"
        );
        Ok(budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_limit_splits_as_documented() {
        let b = Budget::from_nofile(1024).expect("1024 is enough");
        assert_eq!((b.reserve, b.grpc, b.http), (128, 672, 224));
        assert!(b.grpc as u64 + b.http as u64 + b.reserve <= 1024);
    }

    #[test]
    fn large_limits_keep_a_tenth() {
        let b = Budget::from_nofile(1_048_576).expect("large");
        assert_eq!(b.reserve, 104_857);
        assert_eq!(b.grpc as u64 + b.http as u64 + b.reserve, 1_048_576);
    }

    #[test]
    fn tiny_limits_are_refused() {
        assert_eq!(Budget::from_nofile(100), None);
        assert_eq!(Budget::from_nofile(140), None);
        assert!(Budget::from_nofile(256).is_some());
    }
}
