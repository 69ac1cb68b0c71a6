//! Risk scoring for what policy leaves open.
//!
//! One [`Scorer`] trait: the deterministic [`fallback::FallbackScorer`] (the embedded default,
//! used when no LLM is configured) and [`llm::LlmScorer`] (Groq or any OpenAI-compatible
//! endpoint; its prompt in [`prompt`], its verdict cache in [`cache`]). [`combine()`] is the
//! single place where a score becomes a decision: a scorer can raise risk above the policy
//! floor but never lower it, and any scorer failure escalates to a human.

pub mod cache;
mod combine;
pub mod facts;
pub mod fallback;
pub mod guard;
pub mod llm;
pub mod prompt;
pub mod scan;
mod scorer;
pub use combine::{combine, Combined};
pub use scorer::{Assessment, ScoreError, ScoreRequest, Scorer};
