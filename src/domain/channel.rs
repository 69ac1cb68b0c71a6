//! The ways a decision reaches an intent, as a closed set. `as_str` is the wire and storage
//! spelling (`DecidedBy.channel`, audit records, metrics labels), so it never changes.

use serde::{Deserialize, Serialize};

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

impl Channel {
    pub const ALL: [Channel; 10] = [
        Channel::Policy,
        Channel::Scorer,
        Channel::Grpc,
        Channel::Cli,
        Channel::Console,
        Channel::Voice,
        Channel::Sms,
        Channel::Telnyx,
        Channel::Timeout,
        Channel::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Policy => "policy",
            Channel::Scorer => "scorer",
            Channel::Grpc => "grpc",
            Channel::Cli => "cli",
            Channel::Console => "console",
            Channel::Voice => "voice",
            Channel::Sms => "sms",
            Channel::Telnyx => "telnyx",
            Channel::Timeout => "timeout",
            Channel::System => "system",
        }
    }

    /// The channel a wire spelling names; `None` for anything else.
    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
