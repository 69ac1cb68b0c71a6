//! Watch streams, each holding a per-caller permit for as long as it is open.

use futures::StreamExt;

use super::read::scope_filter;
use super::{limits, Gateway, GatewayError, WatchError};
use crate::auth::Principal;
use crate::metrics::StoreOp;
use crate::store::{EventStream, Filter};

impl Gateway {
    pub async fn watch(&self, caller: &Principal, id: &str) -> Result<EventStream, GatewayError> {
        // Authorise against the stored intent first; the watch itself re-reads under its lock.
        let intent = self.get(caller, id).await?;
        let permit = self.watch_permit(caller)?;
        Ok(limits::holding(
            self.store
                .call(StoreOp::Watch, |s| s.watch(&intent.id))
                .await?,
            permit,
        ))
    }

    pub async fn watch_all(
        &self,
        caller: &Principal,
        mut filter: Filter,
        include_progress: bool,
    ) -> Result<EventStream, GatewayError> {
        scope_filter(caller, &mut filter)?;
        let permit = self.watch_permit(caller)?;
        let stream = limits::holding(
            self.store
                .call(StoreOp::WatchAll, |s| s.watch_all())
                .await?,
            permit,
        );
        Ok(Box::pin(stream.filter(move |item| {
            let keep = match item {
                Ok(event) => {
                    filter.matches(&event.intent)
                        && (include_progress || event.kind != crate::domain::EventKind::Progress)
                }
                Err(WatchError::Lagged(_) | WatchError::Unavailable(_)) => true,
            };
            futures::future::ready(keep)
        })))
    }

    fn watch_permit(&self, caller: &Principal) -> Result<limits::WatchPermit, GatewayError> {
        self.watches
            .acquire(caller)
            .map_err(|e| GatewayError::ResourceExhausted {
                message: e.to_string(),
                retry_after: None,
            })
    }
}
