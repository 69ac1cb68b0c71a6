//! The listeners: connection limits and the gRPC listener's TLS (environment only).

use std::path::Path;
use std::time::Duration;

use super::env::Env;
use super::tls::ServerTls;
use super::ConfigError;

/// The listeners' connection limits and TLS (environment only).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// From accept to a complete first request, TLS included (`SENTINEL_HANDSHAKE_TIMEOUT_SECS`).
    pub handshake_timeout: Duration,
    /// HTTP/2 concurrent streams per gRPC connection (`SENTINEL_MAX_STREAMS_PER_CONNECTION`).
    pub max_streams_per_connection: u32,
    /// When a gRPC connection is asked to go away (`SENTINEL_GRPC_MAX_CONNECTION_AGE_SECS`).
    pub grpc_max_connection_age: Duration,
    /// How long its calls and streams may then finish (`SENTINEL_GRPC_MAX_CONNECTION_AGE_GRACE_SECS`).
    pub grpc_max_connection_age_grace: Duration,
    /// TLS for the gRPC listener (`SENTINEL_TLS_CERT`, `SENTINEL_TLS_KEY`, `SENTINEL_TLS_CLIENT_CA`).
    pub tls: Option<ServerTls>,
}

pub(super) fn load(env: &Env<'_>) -> Result<NetConfig, ConfigError> {
    let tls = match (
        env.get("SENTINEL_TLS_CERT"),
        env.get("SENTINEL_TLS_KEY"),
        env.get("SENTINEL_TLS_CLIENT_CA"),
    ) {
        (None, None, None) => None,
        (Some(_), None, _) => {
            return Err(ConfigError::new(
                "SENTINEL_TLS_KEY",
                "is required when SENTINEL_TLS_CERT is set",
            ))
        }
        (None, Some(_), _) => {
            return Err(ConfigError::new(
                "SENTINEL_TLS_CERT",
                "is required when SENTINEL_TLS_KEY is set",
            ))
        }
        (None, None, Some(_)) => {
            return Err(ConfigError::new(
                "SENTINEL_TLS_CLIENT_CA",
                "needs SENTINEL_TLS_CERT and SENTINEL_TLS_KEY (client certificates are only checked over TLS)",
            ))
        }
        (Some(cert), Some(key), ca) => Some(
            ServerTls::from_pem_files(Path::new(&cert), Path::new(&key), ca.as_deref().map(Path::new))
                .map_err(|e| ConfigError::new(e.variable, e.message))?,
        ),
    };
    // Environment only: none of these has a place in the file.
    let secs = |var, default| env.number(var, None, default).map(Duration::from_secs);
    let handshake_timeout = secs("SENTINEL_HANDSHAKE_TIMEOUT_SECS", 10)?;
    let streams = env.number("SENTINEL_MAX_STREAMS_PER_CONNECTION", None, 1000)?;
    Ok(NetConfig {
        handshake_timeout,
        max_streams_per_connection: u32::try_from(streams)
            .map_err(|_| ConfigError::new("SENTINEL_MAX_STREAMS_PER_CONNECTION", "is too large"))?,
        grpc_max_connection_age: secs("SENTINEL_GRPC_MAX_CONNECTION_AGE_SECS", 1800)?,
        grpc_max_connection_age_grace: secs("SENTINEL_GRPC_MAX_CONNECTION_AGE_GRACE_SECS", 60)?,
        tls,
    })
}
