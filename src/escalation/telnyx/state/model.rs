//! The records the shared state keeps: each intent's ladder, its calls, its watchdogs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{IntentId, Millis};
use crate::escalation::telnyx::roster::Approver;
use crate::macros::spelled;

/// Where a call is in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dialled; not answered, or answered and waiting for machine detection.
    Ringing,
    /// The menu is being played / a key is awaited.
    Menu,
    /// Listening for the approver's question, or answering it.
    Question,
    /// Waiting for the PIN that makes an approval count.
    Pin,
    /// Saying goodbye; hang up when the speech ends. Nothing said now decides.
    Closing,
    /// Hung up.
    Ended,
}

/// Answering-machine detection's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amd {
    Pending,
    Human,
    Machine,
}

/// One phone call of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub call_control_id: String,
    /// The ladder step that placed it (the approver's position).
    pub attempt: usize,
    pub approver: Approver,
    pub answered: bool,
    pub amd: Amd,
    pub mode: Mode,
    /// Menus that ended without a key.
    pub misses: u8,
    pub pin_failures: u8,
    /// Question mode is listening through `transcription_start` (no `gather_using_ai`).
    #[serde(default)]
    pub transcribing: bool,
    /// A key was pressed on this call: a person is there, whatever detection says later.
    #[serde(default)]
    pub keyed: bool,
    /// Gathers sent on this call so far (their sequence numbers are 1, 2, ...).
    #[serde(default)]
    pub prompts: u32,
    /// The sequence number of the gather whose answer is awaited; 0 when none is.
    #[serde(default)]
    pub awaiting: u32,
}

impl Call {
    /// A call just dialled: ringing, nothing known yet.
    pub fn ringing(call_control_id: String, attempt: usize, approver: Approver) -> Call {
        Call {
            call_control_id,
            attempt,
            approver,
            answered: false,
            amd: Amd::Pending,
            mode: Mode::Ringing,
            misses: 0,
            pin_failures: 0,
            transcribing: false,
            keyed: false,
            prompts: 0,
            awaiting: 0,
        }
    }
}

/// What the ladder is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Calling `approvers[step]`.
    Calling,
    /// Calls are over; waiting for an SMS reply, the operator or the deadline.
    Waiting,
    /// Decided (here or elsewhere): nothing more to do.
    Done,
}

/// The escalation of one pending intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    pub intent_id: IntentId,
    pub version: u64,
    pub approvers: Vec<Approver>,
    /// The intent is at or above the PIN tier.
    pub pin_required: bool,
    pub step: usize,
    pub stage: Stage,
    pub calls: Vec<Call>,
    pub sms_code: Option<String>,
    /// Channel steps that failed at Telnyx (dial errors, SMS send errors).
    pub failures: usize,
    /// Channel steps that reached Telnyx and went out (calls placed, SMS sent).
    pub delivered: usize,
    /// Wrong SMS codes from the approvers this intent was texted to.
    #[serde(default)]
    pub bad_codes: u8,
    /// Wrong or missing PINs for this intent, by phone and by SMS together.
    #[serde(default)]
    pub bad_pins: u8,
    /// Those failures by sender number (bounds the replies Sentinel texts back).
    #[serde(default)]
    pub failures_by_sender: BTreeMap<String, u8>,
    /// Too many failures: the SMS code is retired and no PIN is accepted for this intent;
    /// it waits for the operator or the deadline.
    #[serde(default)]
    pub locked: bool,
}

impl Ladder {
    pub fn call_mut(&mut self, call_control_id: &str) -> Option<&mut Call> {
        self.calls
            .iter_mut()
            .find(|c| c.call_control_id == call_control_id)
    }
}

/// Which timer of the call state machine a [`Watchdog`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchdogKind {
    /// The ring timeout (plus grace) passed since the dial without Telnyx ending the ringing.
    Ring,
    /// Answered a while ago and machine detection never reported.
    Detection,
}

spelled!(WatchdogKind {
    Ring => "ring",
    Detection => "detection",
});

/// A timer of one call, kept in the shared state so that any replica fires it when it falls
/// due, whichever replica armed it and whether or not that one still lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watchdog {
    pub kind: WatchdogKind,
    pub intent: IntentId,
    pub call_control_id: String,
}

impl Watchdog {
    /// `<kind>|<intent>|<call_control_id>`: one member of the due-time index.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}",
            self.kind.as_str(),
            self.intent,
            self.call_control_id
        )
    }

    /// `None` for anything [`Watchdog::encode`] did not write.
    pub fn decode(text: &str) -> Option<Watchdog> {
        let mut parts = text.splitn(3, '|');
        let kind = parts.next()?;
        let kind = WatchdogKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        let intent = IntentId::parse(parts.next()?)?;
        let call_control_id = parts.next().filter(|c| !c.is_empty())?.to_string();
        Some(Watchdog {
            kind,
            intent,
            call_control_id,
        })
    }
}

/// A duration in milliseconds, saturating.
pub fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}
