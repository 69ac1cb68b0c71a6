//! Reading one variable: environment first, then the file's value, then the default, each
//! parsed into its type with an error that names the variable.

use std::net::SocketAddr;

use super::ConfigError;

/// The environment as the loader sees it: a process's variables, or a map in tests.
pub struct Env<'a> {
    vars: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { vars }
    }

    /// The trimmed value; blank counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.vars)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The value exactly as set, blank included (for variables where blank means "off").
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.vars)(name)
    }

    pub fn addr(
        &self,
        var: &str,
        file_value: Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let raw = self
            .get(var)
            .or(file_value)
            .unwrap_or_else(|| default.to_string());
        raw.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                var,
                format!("{raw:?} is not a socket address like 127.0.0.1:50051"),
            )
        })
    }

    /// A whole number above 0.
    pub fn number(
        &self,
        var: &str,
        file_value: Option<u64>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        let n = match self.get(var) {
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| ConfigError::new(var, format!("{raw:?} is not a whole number")))?,
            None => file_value.unwrap_or(default),
        };
        if n == 0 {
            return Err(ConfigError::new(var, "must be greater than 0"));
        }
        Ok(n)
    }

    /// A switch spelled `on` or `off` (any case); `default` when unset.
    pub fn switch(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) if raw.eq_ignore_ascii_case("on") => Ok(true),
            Some(raw) if raw.eq_ignore_ascii_case("off") => Ok(false),
            Some(raw) => Err(ConfigError::new(
                var,
                format!("{raw:?} is not 'on' or 'off'"),
            )),
        }
    }

    /// An http(s) URL without its trailing slash.
    pub fn url(
        &self,
        var: &str,
        file_value: Option<String>,
        default: Option<&str>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.get(var).or(file_value).or(default.map(String::from)) else {
            return Ok(None);
        };
        let parsed = reqwest::Url::parse(&raw)
            .map_err(|e| ConfigError::new(var, format!("{raw:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                var,
                format!("{raw:?} must be an http or https URL"),
            ));
        }
        Ok(Some(raw.trim_end_matches('/').to_string()))
    }
}
