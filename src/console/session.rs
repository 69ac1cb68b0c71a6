//! Console sessions: a random token in an HttpOnly, SameSite=Strict cookie that names a
//! server-side entry holding the principal (never the API key) and the session's CSRF token.
//!
//! The map is bounded ([`MAX_SESSIONS`]): a sign-in into a full map first drops expired
//! sessions, then the one closest to expiry. Sessions live in the replica that made them; a
//! console behind a load balancer needs sticky sessions (or signs in again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use rand::RngCore;

use crate::auth::Principal;
use crate::sync::lock;

/// The cookie's name.
pub const COOKIE: &str = "sentinel_console";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The most sessions one replica keeps.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// Sent back in every form; a POST without it changes nothing.
    pub csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `principal`; returns its cookie token and the session.
    pub fn create(&self, principal: Principal) -> (String, Session) {
        let token = random_token();
        let session = Session {
            principal,
            csrf: random_token(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = lock(&self.map);
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(token.clone(), session.clone());
        (token, session)
    }

    /// The live session the request's cookie names, if any. An expired one is removed.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie_token(headers)?;
        let mut map = lock(&self.map);
        match map.get(token) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends the session the request's cookie names.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(token) = cookie_token(headers) {
            lock(&self.map).remove(token);
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 32 random bytes, hex: unguessable session and CSRF tokens.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The session token in the request's `Cookie` headers.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that starts a session (`Secure` when served over TLS).
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "sentinel_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static(
            "sentinel_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ended_by_sign_out() {
        let sessions = Sessions::default();
        let (token, session) = sessions.create(Principal::Operator("alice".into()));
        assert_ne!(token, session.csrf);
        let headers = with_cookie(&format!("theme=dark; {COOKIE}={token}"));
        let found = sessions.find(&headers).expect("found");
        assert_eq!(found.principal, Principal::Operator("alice".into()));
        assert!(sessions
            .find(&with_cookie(&format!("{COOKIE}=nope")))
            .is_none());
        sessions.remove(&headers);
        assert!(sessions.find(&headers).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_under_tls() {
        let plain = set_cookie("t", false).to_str().unwrap().to_string();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Max-Age=") && !plain.contains("Secure"));
        assert!(set_cookie("t", true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn the_map_is_bounded() {
        let sessions = Sessions::default();
        for _ in 0..MAX_SESSIONS + 5 {
            sessions.create(Principal::Open);
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }
}
