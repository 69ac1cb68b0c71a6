//! Logs and traces: the log format and filter, the OTLP endpoint, the resource's names.

use serde::Deserialize;

use super::env::Env;
use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    /// `service.name` (`OTEL_SERVICE_NAME`); unset: `OTEL_RESOURCE_ATTRIBUTES`' or `sentinel`.
    pub service_name: Option<String>,
    /// `deployment.environment.name` (`SENTINEL_ENVIRONMENT`, e.g. `production`); unset:
    /// whatever `OTEL_RESOURCE_ATTRIBUTES` says, if anything.
    pub environment: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter (`SENTINEL_LOG`, else `RUST_LOG`), default `info`.
    pub log_filter: String,
}

pub(super) fn load(
    env: &Env,
    file_format: Option<LogFormat>,
) -> Result<TelemetryConfig, ConfigError> {
    let log_format = match env.get("SENTINEL_LOG_FORMAT") {
        None => file_format.unwrap_or_default(),
        Some(v) => match v.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError::new(
                    "SENTINEL_LOG_FORMAT",
                    format!("{other:?} is not 'text' or 'json'"),
                ))
            }
        },
    };
    Ok(TelemetryConfig {
        otlp_endpoint: env.url("OTEL_EXPORTER_OTLP_ENDPOINT", None, None)?,
        service_name: env.get("OTEL_SERVICE_NAME"),
        environment: env.get("SENTINEL_ENVIRONMENT"),
        log_format,
        log_filter: env
            .get("SENTINEL_LOG")
            .or_else(|| env.get("RUST_LOG"))
            .unwrap_or_else(|| "info".to_string()),
    })
}
