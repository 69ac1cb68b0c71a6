//! The exposition of the registry in the format the scraper asks for.

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};

use super::record::enabled;
use super::registry::METRICS;

/// The exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: the Prometheus text format.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, the Prometheus text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Every registered metric in `format`; only the build and the up gauges while metrics are
/// off (the others would show zeros that mean nothing).
pub fn render(format: Format) -> String {
    let registry = if enabled() {
        &METRICS.registry
    } else {
        &METRICS.essentials
    };
    let mut out = String::with_capacity(16 * 1024);
    let written = match format {
        Format::Prometheus => prometheus_text::encode(&mut out, registry),
        Format::OpenMetrics => openmetrics_text::encode(&mut out, registry),
    };
    if let Err(e) = written {
        // Writing to a String cannot fail; say so loudly if an encoder ever does.
        tracing::error!(error = %e, "metrics: encoding failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::inc;

    #[test]
    fn renders_labelled_counters_in_both_formats() {
        inc("sentinel_webhooks_total", &[("outcome", "test\"quoted")]);
        let text = render(Format::Prometheus);
        assert!(text.contains("# TYPE sentinel_webhooks_total counter"));
        assert!(
            text.contains(r#"sentinel_webhooks_total{outcome="test\"quoted"}"#),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let open = render(Format::OpenMetrics);
        assert!(open.contains("# TYPE sentinel_webhooks counter"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    }
}
