//! The one mapping from gateway errors to gRPC statuses, and the repair of tonic's answer to
//! a request it cannot decode.

use tonic::Status;
use tracing::{error, warn};

use super::limits;
use crate::gateway::GatewayError;

/// The one mapping from gateway errors to gRPC status codes. Internal details are logged,
/// never sent.
pub fn status(e: GatewayError) -> Status {
    match e {
        GatewayError::Invalid(m) => Status::invalid_argument(m),
        GatewayError::NotFound(id) => Status::not_found(format!("intent {id} not found")),
        GatewayError::PermissionDenied(m) => Status::permission_denied(m),
        e @ GatewayError::KeyConflict { .. } => Status::failed_precondition(e.to_string()),
        GatewayError::FailedPrecondition(m) => Status::failed_precondition(m),
        e @ GatewayError::AlreadyDecided { .. } => Status::failed_precondition(e.to_string()),
        GatewayError::Unavailable(source) => {
            warn!(error = %source, "store unavailable");
            Status::unavailable(
                "the state store is unavailable; the outcome is unknown: retry with the same idempotency_key, or check with GetIntent",
            )
        }
        GatewayError::Internal(m) => {
            error!(error = %m, "internal error");
            Status::internal("internal error")
        }
        GatewayError::ResourceExhausted {
            message,
            retry_after,
        } => limits::resource_exhausted(message, retry_after),
    }
}
/// tonic answers a request it cannot decode (for example a payload nested past prost's
/// recursion limit) with INTERNAL. That is bad input, not a server fault: rewrite those
/// trailers-only responses to INVALID_ARGUMENT naming the request body.
pub fn decode_errors_are_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let is_internal = headers.get("grpc-status").is_some_and(|v| v == "13");
    let is_decode = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            m.starts_with("failed%20to%20decode") || m.starts_with("failed to decode")
        });
    if is_internal && is_decode {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static(
                "payload:%20cannot%20be%20decoded%20(nesting%20deeper%20than%20the%20limit%20or%20a%20malformed%20message)",
            ),
        );
    }
    response
}
