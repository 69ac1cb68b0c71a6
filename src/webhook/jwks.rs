//! `GET /.well-known/jwks.json`: the public keys approval receipts verify against (RFC 8037
//! OKP keys with their `kid`), the current signer first, then retired keys still valid.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::HttpState;

/// Verifiers may cache the set for five minutes; after a rotation the previous key stays
/// listed, and a verifier that meets an unknown `kid` fetches the set again.
const CACHE_CONTROL: &str = "public, max-age=300";

pub(super) async fn jwks(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, CACHE_CONTROL)],
        Json(state.gateway.receipt_keys()),
    )
}
