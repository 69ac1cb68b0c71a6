//! Deciding an intent from what policy and the scorer concluded: the one pure decision
//! function the gateway calls, and the corpus harness (`sentinel policy test`) that replays
//! intents through the same function, so the two can never disagree.
//!
//! Sits below the gateway and above policy and scoring: it imports both, and neither
//! imports it.

pub mod corpus;
pub mod decide;

pub use decide::{decide, Decision};
