//! The payload as it travels (`google.protobuf.Struct`, [`json_to_struct`]) and as it is
//! hashed. The payload hash: SHA-256 over the payload's RFC 8785 (JCS) canonical JSON, UTF-8, in
//! lowercase hex. JCS sorts object keys by UTF-16 code units, writes no whitespace and
//! spells numbers as ECMAScript does (`420.0` is `420`, `1e21` is `1e+21`), so any JSON
//! library can reproduce the bytes.

use prost_types::value::Kind;
use sha2::{Digest, Sha256};

/// The payload's canonical JSON bytes.
pub fn canonical_json(payload: &serde_json::Value) -> Vec<u8> {
    // A `serde_json::Value` holds no NaN or infinity, the only values JCS cannot write.
    serde_json_canonicalizer::to_vec(payload).unwrap_or_default()
}

/// Lowercase hex SHA-256 of [`canonical_json`].
pub fn payload_hash(payload: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(canonical_json(payload)))
}

/// A JSON object as the `google.protobuf.Struct` it travels as. Every number becomes a
/// double, so integers above 2^53 arrive rounded (and the receipt names the rounded value).
pub fn json_to_struct(value: &serde_json::Value) -> prost_types::Struct {
    prost_types::Struct {
        fields: value
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), json_to_value(v)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// One JSON value as a `google.protobuf.Value`.
pub fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(value)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_is_sha256_of_the_jcs_form() {
        // The same vector as the Python SDK's test, so both agree byte for byte.
        let payload =
            json!({"vendor": "AWS", "amount": 420, "lines": [{"sku": "ec2", "qty": 1.5}]});
        let canonical = br#"{"amount":420,"lines":[{"qty":1.5,"sku":"ec2"}],"vendor":"AWS"}"#;
        assert_eq!(canonical_json(&payload), canonical.to_vec());
        assert_eq!(
            payload_hash(&payload),
            hex::encode(Sha256::digest(canonical))
        );
        // Numbers are spelled as ECMAScript does: a whole double is an integer.
        assert_eq!(
            payload_hash(&json!({"amount": 420.0})),
            payload_hash(&json!({"amount": 420}))
        );
        assert_eq!(
            canonical_json(&json!({"n": 1e21})),
            br#"{"n":1e+21}"#.to_vec()
        );
    }
}
