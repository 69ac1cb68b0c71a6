//! How a per-caller limit looks on the wire: `RESOURCE_EXHAUSTED` with retry hints.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::Status;

/// `RESOURCE_EXHAUSTED` carrying the message and, when the limit knows when a retry can
/// succeed, `retry-after` (whole seconds, rounded up, as in HTTP) and `grpc-retry-pushback-ms`
/// (what gRPC clients with retry policies read).
pub fn resource_exhausted(message: String, retry_after: Option<Duration>) -> Status {
    let mut status = Status::resource_exhausted(message);
    if let Some(wait) = retry_after {
        let ms = wait.as_millis().max(1);
        let secs = ms.div_ceil(1000);
        let md = status.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(secs.to_string()) {
            md.insert("retry-after", v);
        }
        if let Ok(v) = MetadataValue::try_from(ms.to_string()) {
            md.insert("grpc-retry-pushback-ms", v);
        }
    }
    status
}
