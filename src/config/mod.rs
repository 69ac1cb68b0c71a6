//! Configuration: one TOML file (`SENTINEL_CONFIG`) plus environment overrides, loaded once,
//! typed and validated before anything binds. A bad value stops start-up naming the variable.
//! Secrets come only from the environment and never appear in `Debug` output or logs.
//!
//! Each section parses its variables into the types the rest of the server takes:
//! [`store`] (the backend and retention), [`llm`] (the scorer, on only with a key),
//! [`telnyx`] (credentials, webhook key, roster), [`auth`] (the key ring), [`net`] (listener
//! limits and [`tls`]), [`limits`] (per-caller limits) and `telemetry` (log format and
//! filter, OTLP). `load.rs` reads the file and then each section; `error.rs` holds the one
//! error, naming the variable. Nothing downstream re-checks a string.

mod auth;
mod env;
mod error;
pub mod guard;
pub mod limits;
pub mod llm;
mod load;
pub mod net;
pub mod receipt;
mod secret;
pub mod store;
mod telemetry;
pub mod telnyx;
pub mod tls;
pub use error::ConfigError;
pub use llm::{LlmConfig, LlmSettings, DEFAULT_LLM_BASE_URL, DEFAULT_LLM_MODEL};
#[cfg(test)]
pub(crate) use load::tests;
pub use load::{Config, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR};
pub use net::NetConfig;
pub use secret::{PinHash, Secret};
pub use store::{RedisUrl, StoreBackend, StoreConfig};
pub use telemetry::{LogFormat, TelemetryConfig};
pub use telnyx::{
    ApproverConfig, EscalationConfig, TelnyxSettings, DEFAULT_PIN_MIN_RISK,
    DEFAULT_TELNYX_BASE_URL, DEFAULT_TELNYX_VOICE,
};
