//! Policy packs: deterministic, versioned rules written as CEL expressions.
//!
//! A pack is a TOML file of modules (which actions they own, their approval threshold and
//! deadline) and ordered rules. `floor` rules raise the minimum score and evaluation goes on;
//! the first matching `approve`, `escalate` or `decline` rule decides. A rule that fails to
//! evaluate (a missing field, a wrong type) is recorded and can only make the outcome
//! stricter: it turns an approval or an open case into an escalation. Actions no module owns
//! escalate. The pack's `version` (a content hash) is stamped on every decision.

mod evaluation;
mod pack;

pub use evaluation::{Evaluation, Verdict};
pub use pack::{Effect, PolicyError, PolicyPack};
