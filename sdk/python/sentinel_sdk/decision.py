"""What ``guard`` returns: a frozen, plain-Python view of a decided intent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from ._proto.sentinel.v1 import sentinel_pb2 as pb

TERMINAL_STATES = frozenset({"APPROVED", "DECLINED", "EXPIRED", "CANCELLED"})


@dataclass(frozen=True)
class Reason:
    """Why the risk or the decision is what it is."""

    code: str
    source: str  # "POLICY", "SCORER", "HUMAN", "SYSTEM"
    message: str
    rule: str = ""


@dataclass(frozen=True)
class DecidedBy:
    """Who or what decided: ``kind`` is POLICY, SCORER, HUMAN, TIMEOUT, AGENT or SYSTEM."""

    kind: str
    approver: str = ""
    channel: str = ""


@dataclass(frozen=True)
class Decision:
    """A terminal decision. ``approved`` is True only for state ``APPROVED``."""

    approved: bool
    state: str
    intent_id: str
    risk_score: int
    analysis: str
    reasons: Tuple[Reason, ...] = field(default_factory=tuple)
    decided_by: Optional[DecidedBy] = None
    receipt: Optional[str] = None
    decision_reason: str = ""
    replayed: bool = False


def state_name(value: int) -> str:
    """``INTENT_STATE_APPROVED`` -> ``APPROVED``; an unknown number stays visible as such."""
    try:
        return str(pb.IntentState.Name(value)).replace("INTENT_STATE_", "", 1)
    except ValueError:
        return f"UNKNOWN({value})"


def _enum_suffix(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).replace(prefix, "", 1)
    except ValueError:
        return f"UNKNOWN({value})"


def receipt_of(intent: pb.Intent) -> Optional[str]:
    """The intent's receipt (compact JWS); the gateway sets it on APPROVED intents only."""
    return intent.receipt or None


def decision_from_intent(intent: pb.Intent, *, replayed: bool = False) -> Decision:
    state = state_name(intent.state)
    decided_by = None
    if intent.HasField("decided_by"):
        d = intent.decided_by
        decided_by = DecidedBy(
            kind=_enum_suffix(pb.DeciderKind, d.kind, "DECIDER_KIND_"),
            approver=d.approver,
            channel=d.channel,
        )
    return Decision(
        # Only an explicit APPROVED approves: any other or unknown state does not.
        approved=intent.state == pb.INTENT_STATE_APPROVED,
        state=state,
        intent_id=intent.intent_id,
        risk_score=int(intent.risk_score),
        analysis=intent.analysis,
        reasons=tuple(
            Reason(
                code=r.code,
                source=_enum_suffix(pb.ReasonSource, r.source, "REASON_SOURCE_"),
                message=r.message,
                rule=r.rule,
            )
            for r in intent.reasons
        ),
        decided_by=decided_by,
        receipt=receipt_of(intent),
        decision_reason=intent.decision_reason,
        replayed=replayed,
    )
