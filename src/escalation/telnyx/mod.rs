//! Telnyx escalation: phone the approvers one by one, then text them a one-time code.
//!
//! - [`driver`]: the ladder's moves (claim, dial, SMS step, give up, stop) and decisions.
//! - [`inbound`]: verified webhooks: which intent an event is about, and its effects.
//! - [`voice`] + [`keys`]: the call state machine (pure): AMD, menu, PIN, question mode.
//! - [`speech`]: what is said on the call.
//! - [`sms`]: one-time codes, the message, and the replies.
//! - [`commands`] + [`client`]: typed call commands and the Telnyx API client.
//! - [`wire`]: webhook envelopes and our `client_state`.
//! - [`roster`], [`ladder`]: who is asked, in which order.
//! - [`state`]: what every replica must share (ladders, indexes, webhook dedupe, claims,
//!   watchdogs), in memory or in Redis.
//! - [`watchdog`]: the shared timers, claim renewal and the takeover of a dead replica's
//!   escalations.
//!
//! The escalation loop calls [`Channel::start`](crate::escalation::Channel::start)/
//! [`Channel::stop`](crate::escalation::Channel::stop), the webhook sidecar hands
//! [`Telnyx::handle`] verified, deduplicated events. Every step is a progress line on the
//! intent. Decisions go through the gateway's compare-and-set, so a key press racing the CLI
//! produces exactly one decision and the loser is told so. Nothing here approves on its own:
//! errors decline or wait. Every task spawned here is tracked, so shutdown waits for it.

mod channel;
pub mod client;
pub mod commands;
pub mod driver;
pub mod inbound;
pub mod keys;
pub mod ladder;
pub mod roster;
pub mod sms;
pub mod speech;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
pub mod voice;
pub mod watchdog;
pub mod wire;

use std::time::Duration;

pub use channel::{Telnyx, TelnyxChannel, TelnyxError};
pub use state::{MemoryState, StateError, TelnyxState};
pub use wire::{ClientState, Envelope, EventData};

/// How long ladders, call indexes and SMS codes are kept.
pub(super) const LADDER_TTL: Duration = Duration::from_secs(24 * 3600);
/// Extra time after the ring timeout before the watchdog stops waiting for Telnyx's hang-up.
pub(super) const RING_GRACE: Duration = Duration::from_secs(10);
/// Machine detection normally reports within ~4 s of the answer; past this, the approver
/// hears the menu anyway (a machine cannot press keys, so nothing is lost).
pub(super) const AMD_WAIT: Duration = Duration::from_secs(6);
/// The longest an answered call may last.
pub(super) const CALL_TIME_LIMIT_SECS: u64 = 600;
/// The approver waits on the line for the answer: keep it short.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhooks can race the dial's response (we learn the call id from it): wait this long.
pub(super) const UNKNOWN_CALL_WAIT: Duration = Duration::from_millis(200);
pub(super) const UNKNOWN_CALL_TRIES: u32 = 15;
pub(super) const CAS_TRIES: u32 = 16;
