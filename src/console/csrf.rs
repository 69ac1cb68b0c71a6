//! Cross-site request forgery defences for every state-changing console request: the
//! request must come from this site (its `Origin`, or failing that `Sec-Fetch-Site`, names
//! the host the browser addressed) and, once signed in, carry the session's CSRF token.
//!
//! A request with neither header (a script, not a browser) still needs the session cookie
//! and the token, so it cannot be forged by a page elsewhere either.

use axum::http::{header, HeaderMap};

use crate::auth::secret_eq;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the request came from another site ({0}); the console accepts its own forms only")]
    ForeignOrigin(String),
    #[error("the form's CSRF token is missing or does not match the session: reload the page")]
    BadToken,
}

/// Whether the request was sent by a page of this site.
pub fn same_origin(headers: &HeaderMap) -> Result<(), CsrfError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        // `scheme://host[:port]`; TLS or not, the host must be the one addressed.
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(CsrfError::ForeignOrigin(origin.to_string()));
        }
        return Ok(());
    }
    match text(header::HeaderName::from_static("sec-fetch-site")) {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(other) => Err(CsrfError::ForeignOrigin(format!("sec-fetch-site {other}"))),
    }
}

/// Whether the form's token is the session's.
pub fn token_matches(sent: Option<&str>, session_token: &str) -> Result<(), CsrfError> {
    match sent {
        Some(t) if !t.is_empty() && secret_eq(t.as_bytes(), session_token.as_bytes()) => Ok(()),
        _ => Err(CsrfError::BadToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_sites_origin_passes() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert_eq!(same_origin(&ok), Ok(()));
        let foreign = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.test")]);
        assert!(matches!(
            same_origin(&foreign),
            Err(CsrfError::ForeignOrigin(_))
        ));
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(same_origin(&null).is_err());
        let cross = headers(&[("host", "h"), ("sec-fetch-site", "cross-site")]);
        assert!(same_origin(&cross).is_err());
        assert_eq!(same_origin(&headers(&[("host", "h")])), Ok(()));
    }

    #[test]
    fn the_token_must_match() {
        assert_eq!(token_matches(Some("abc"), "abc"), Ok(()));
        assert_eq!(token_matches(Some("abd"), "abc"), Err(CsrfError::BadToken));
        assert_eq!(token_matches(Some(""), ""), Err(CsrfError::BadToken));
        assert_eq!(token_matches(None, "abc"), Err(CsrfError::BadToken));
    }
}
