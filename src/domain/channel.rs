//! The ways a decision reaches an intent, as a closed set. `as_str` is the wire and storage
//! spelling (`DecidedBy.channel`, audit records, metrics labels), so it never changes.

use serde::{Deserialize, Serialize};

use crate::macros::spelled;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A rule of the policy pack.
    Policy,
    /// The risk scorer.
    Scorer,
    /// A gRPC caller without a more specific client (an agent cancelling, an SDK).
    Grpc,
    /// `sentinel resolve` and the other CLI subcommands.
    Cli,
    /// The operator console.
    Console,
    /// A key press on a Telnyx call.
    Voice,
    /// A Telnyx SMS reply.
    Sms,
    /// The Telnyx channel itself (every step failed).
    Telnyx,
    /// The approval deadline.
    Timeout,
    /// Sentinel on its own (an interrupted analysis escalated).
    System,
}

spelled!(Channel {
    Policy => "policy",
    Scorer => "scorer",
    Grpc => "grpc",
    Cli => "cli",
    Console => "console",
    Voice => "voice",
    Sms => "sms",
    Telnyx => "telnyx",
    Timeout => "timeout",
    System => "system",
});

impl Channel {
    /// The channel a wire spelling names; `None` for anything else.
    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_spelling_round_trips_and_matches_serde() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
        assert_eq!(Channel::parse("Voice"), None);
        assert_eq!(Channel::parse(""), None);
    }
}
