//! Escalation: getting a human to decide a pending intent.
//!
//! The escalator is event-driven: it follows every transition through the store's
//! `watch_all`, starts its channels when an intent becomes PENDING_APPROVAL and stops them
//! when the intent is decided, whichever replica or channel decided it. The operator channel
//! (`ResolveIntent`, `sentinel resolve`) is always available and needs nothing here; the
//! Telnyx voice and SMS channels plug in behind [`Channel`]. Channels reach intents only
//! through the [`Gateway`](crate::gateway::Gateway).

mod channel;
mod dispatch;
pub mod telnyx;

pub use channel::Channel;
pub use dispatch::spawn;
