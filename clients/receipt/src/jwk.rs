//! Public keys as JWKs (RFC 8037 OKP, Ed25519) and key sets; a key's `kid` is its RFC 7638
//! thumbprint, so every replica and every verifier derives the same id from the key alone.

use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// One public key. Unknown members are ignored; `kty`, `crv` and `x` are checked on use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    /// The JWK of a raw Ed25519 public key, `kid` its thumbprint, marked for EdDSA signatures.
    pub fn ed25519(public: &[u8; 32]) -> Jwk {
        let x = b64url(public);
        Jwk {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }

    /// The Ed25519 key this JWK holds.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(KeyError(format!(
                "key {:?} is not an Ed25519 OKP key",
                self.kid
            )));
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.x.as_bytes())
            .map_err(|_| KeyError(format!("key {:?}: x is not unpadded base64url", self.kid)))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError(format!("key {:?}: x is not 32 bytes", self.kid)))?;
        VerifyingKey::from_bytes(&raw)
            .map_err(|_| KeyError(format!("key {:?}: x is not an Ed25519 point", self.kid)))
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, base64url.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    b64url(&Sha256::digest(canonical.as_bytes()))
}

/// A key set, as `GET /.well-known/jwks.json` serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads a JWKS (`{"keys": [...]}`) or a single JWK (a set of one).
    pub fn from_json(text: &str) -> Result<Jwks, KeyError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| KeyError(format!("the key set is not JSON: {e}")))?;
        if value.get("keys").is_some() {
            serde_json::from_value(value).map_err(|e| KeyError(format!("not a JWKS: {e}")))
        } else {
            let key: Jwk = serde_json::from_value(value)
                .map_err(|e| KeyError(format!("neither a JWKS nor a JWK: {e}")))?;
            Ok(Jwks { keys: vec![key] })
        }
    }

    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// Downloads a key set (e.g. `http://gateway:8080/.well-known/jwks.json`), at most 1 MiB,
/// within `timeout`.
#[cfg(feature = "fetch")]
pub async fn fetch_jwks(url: &str, timeout: std::time::Duration) -> Result<Jwks, KeyError> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(KeyError(format!("{url:?} is not an http(s) URL")));
    }
    let fail = |e: reqwest::Error| KeyError(format!("{url}: {e}"));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(fail)?;
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(fail)?
        .error_for_status()
        .map_err(fail)?;
    if response.content_length().is_some_and(|n| n > 1 << 20) {
        return Err(KeyError(format!("{url}: the key set is larger than 1 MiB")));
    }
    let body = response.bytes().await.map_err(fail)?;
    Jwks::from_json(&String::from_utf8_lossy(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_thumbprint_example() {
        // RFC 8037, appendix A.3: the thumbprint of the example Ed25519 key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn a_single_jwk_reads_as_a_set_of_one() {
        let jwk = Jwk::ed25519(&[7; 32]);
        let text = serde_json::to_string(&jwk).unwrap();
        assert!(text.contains(r#""use":"sig""#), "{text}");
        let set = Jwks::from_json(&text).unwrap();
        assert_eq!(set.find(&jwk.kid), Some(&jwk));
        assert!(Jwks::from_json("[1]").is_err());
    }
}
