//! Small HTTP servers standing in for the paid APIs.

pub mod llm;
pub mod telnyx;
