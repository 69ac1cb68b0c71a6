//! Every failure the client returns is an [`Error`]; `tonic::Status` is mapped here once.

use crate::Decision;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No API key, or one the gateway does not know.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The key may not do this (e.g. submit as another agent).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Bad input; `field` names it (`agent_id`, `payload.amount`, ...) when the gateway did.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        field: Option<String>,
        message: String,
    },
    #[error("not found: {0}")]
    NotFound(String),
    /// Idempotency key reused with another body, or the intent is already decided.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A per-caller limit refused the call.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The gateway stayed unreachable longer than the retry window. With `intent_id` the
    /// intent exists and stays pending; with only `idempotency_key` the submit's outcome is
    /// unknown: retry with that key.
    #[error("unavailable: {message}")]
    Unavailable {
        message: String,
        intent_id: Option<String>,
        idempotency_key: Option<String>,
    },
    /// The caller's timeout passed first; the intent (if `intent_id`) stays pending.
    #[error("timed out waiting for a decision{}", .intent_id.as_ref().map(|i| format!(" on intent {i}")).unwrap_or_default())]
    Timeout {
        intent_id: Option<String>,
        idempotency_key: Option<String>,
    },
    /// `require_approval` only: the intent was decided, and not approved.
    #[error("not approved: intent {} is {}", .0.intent_id, .0.state)]
    NotApproved(Box<Decision>),
    /// Bad client options (address, TLS material).
    #[error("configuration: {0}")]
    Config(String),
    /// Anything else the gateway answered (INTERNAL, UNKNOWN, ...).
    #[error("{code:?}: {message}")]
    Other { code: tonic::Code, message: String },
}

impl Error {
    /// The status's meaning as a variant. `INVALID_ARGUMENT` messages start with the field
    /// (`agent_id: is required`), which becomes `field`.
    pub(crate) fn from_status(status: &tonic::Status) -> Error {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unauthenticated => Error::Unauthenticated(message),
            tonic::Code::PermissionDenied => Error::PermissionDenied(message),
            tonic::Code::InvalidArgument => Error::InvalidArgument {
                field: field_of(&message),
                message,
            },
            tonic::Code::NotFound => Error::NotFound(message),
            tonic::Code::FailedPrecondition => Error::FailedPrecondition(message),
            tonic::Code::ResourceExhausted => Error::ResourceExhausted(message),
            tonic::Code::Unavailable => Error::Unavailable {
                message,
                intent_id: None,
                idempotency_key: None,
            },
            tonic::Code::DeadlineExceeded => Error::Timeout {
                intent_id: None,
                idempotency_key: None,
            },
            code => Error::Other { code, message },
        }
    }
}

fn field_of(message: &str) -> Option<String> {
    let (head, _) = message.split_once(':')?;
    let is_path = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    is_path.then(|| head.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field() {
        let e = Error::from_status(&tonic::Status::invalid_argument(
            "payload.amount: is not finite",
        ));
        assert!(
            matches!(e, Error::InvalidArgument { field: Some(f), .. } if f == "payload.amount")
        );
        let e = Error::from_status(&tonic::Status::invalid_argument(
            "something odd happened: x",
        ));
        assert!(matches!(e, Error::InvalidArgument { field: None, .. }));
    }
}
