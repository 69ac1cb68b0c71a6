//! The one configuration error: the variable or file key at fault, and why.

#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The environment variable or file key at fault.
    pub name: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            name: name.to_string(),
            message: message.into(),
        }
    }
}
