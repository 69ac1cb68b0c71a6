import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IntentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTENT_STATE_UNSPECIFIED: _ClassVar[IntentState]
    INTENT_STATE_ANALYZING: _ClassVar[IntentState]
    INTENT_STATE_PENDING_APPROVAL: _ClassVar[IntentState]
    INTENT_STATE_APPROVED: _ClassVar[IntentState]
    INTENT_STATE_DECLINED: _ClassVar[IntentState]
    INTENT_STATE_EXPIRED: _ClassVar[IntentState]
    INTENT_STATE_CANCELLED: _ClassVar[IntentState]

class RiskLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_LEVEL_UNSPECIFIED: _ClassVar[RiskLevel]
    RISK_LEVEL_LOW: _ClassVar[RiskLevel]
    RISK_LEVEL_MEDIUM: _ClassVar[RiskLevel]
    RISK_LEVEL_HIGH: _ClassVar[RiskLevel]
    RISK_LEVEL_CRITICAL: _ClassVar[RiskLevel]

class ReasonSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_SOURCE_UNSPECIFIED: _ClassVar[ReasonSource]
    REASON_SOURCE_POLICY: _ClassVar[ReasonSource]
    REASON_SOURCE_SCORER: _ClassVar[ReasonSource]
    REASON_SOURCE_HUMAN: _ClassVar[ReasonSource]
    REASON_SOURCE_SYSTEM: _ClassVar[ReasonSource]

class DeciderKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECIDER_KIND_UNSPECIFIED: _ClassVar[DeciderKind]
    DECIDER_KIND_POLICY: _ClassVar[DeciderKind]
    DECIDER_KIND_SCORER: _ClassVar[DeciderKind]
    DECIDER_KIND_HUMAN: _ClassVar[DeciderKind]
    DECIDER_KIND_TIMEOUT: _ClassVar[DeciderKind]
    DECIDER_KIND_AGENT: _ClassVar[DeciderKind]
    DECIDER_KIND_SYSTEM: _ClassVar[DeciderKind]
INTENT_STATE_UNSPECIFIED: IntentState
INTENT_STATE_ANALYZING: IntentState
INTENT_STATE_PENDING_APPROVAL: IntentState
INTENT_STATE_APPROVED: IntentState
INTENT_STATE_DECLINED: IntentState
INTENT_STATE_EXPIRED: IntentState
INTENT_STATE_CANCELLED: IntentState
RISK_LEVEL_UNSPECIFIED: RiskLevel
RISK_LEVEL_LOW: RiskLevel
RISK_LEVEL_MEDIUM: RiskLevel
RISK_LEVEL_HIGH: RiskLevel
RISK_LEVEL_CRITICAL: RiskLevel
REASON_SOURCE_UNSPECIFIED: ReasonSource
REASON_SOURCE_POLICY: ReasonSource
REASON_SOURCE_SCORER: ReasonSource
REASON_SOURCE_HUMAN: ReasonSource
REASON_SOURCE_SYSTEM: ReasonSource
DECIDER_KIND_UNSPECIFIED: DeciderKind
DECIDER_KIND_POLICY: DeciderKind
DECIDER_KIND_SCORER: DeciderKind
DECIDER_KIND_HUMAN: DeciderKind
DECIDER_KIND_TIMEOUT: DeciderKind
DECIDER_KIND_AGENT: DeciderKind
DECIDER_KIND_SYSTEM: DeciderKind

class Reason(_message.Message):
    __slots__ = ("code", "source", "message", "rule")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    code: str
    source: ReasonSource
    message: str
    rule: str
    def __init__(self, code: _Optional[str] = ..., source: _Optional[_Union[ReasonSource, str]] = ..., message: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...

class DecidedBy(_message.Message):
    __slots__ = ("kind", "approver", "channel")
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    kind: DeciderKind
    approver: str
    channel: str
    def __init__(self, kind: _Optional[_Union[DeciderKind, str]] = ..., approver: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class ScorerInfo(_message.Message):
    __slots__ = ("model", "input_tokens", "output_tokens", "cached")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    model: str
    input_tokens: int
    output_tokens: int
    cached: bool
    def __init__(self, model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached: bool = ...) -> None: ...

class Intent(_message.Message):
    __slots__ = ("intent_id", "agent_id", "action", "module", "payload", "reasoning", "state", "risk_score", "risk_level", "reasons", "analysis", "decided_by", "policy_version", "version", "created_at", "decided_at", "expires_at", "labels", "idempotency_key", "decision_reason", "scorer", "receipt")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    agent_id: str
    action: str
    module: str
    payload: _struct_pb2.Struct
    reasoning: str
    state: IntentState
    risk_score: int
    risk_level: RiskLevel
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    analysis: str
    decided_by: DecidedBy
    policy_version: str
    version: int
    created_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    idempotency_key: str
    decision_reason: str
    scorer: ScorerInfo
    receipt: str
    def __init__(self, intent_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., action: _Optional[str] = ..., module: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reasoning: _Optional[str] = ..., state: _Optional[_Union[IntentState, str]] = ..., risk_score: _Optional[int] = ..., risk_level: _Optional[_Union[RiskLevel, str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., analysis: _Optional[str] = ..., decided_by: _Optional[_Union[DecidedBy, _Mapping]] = ..., policy_version: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., decision_reason: _Optional[str] = ..., scorer: _Optional[_Union[ScorerInfo, _Mapping]] = ..., receipt: _Optional[str] = ...) -> None: ...

class DecisionEvent(_message.Message):
    __slots__ = ("intent_id", "state", "version", "detail", "intent", "terminal", "at")
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    state: IntentState
    version: int
    detail: str
    intent: Intent
    terminal: bool
    at: _timestamp_pb2.Timestamp
    def __init__(self, intent_id: _Optional[str] = ..., state: _Optional[_Union[IntentState, str]] = ..., version: _Optional[int] = ..., detail: _Optional[str] = ..., intent: _Optional[_Union[Intent, _Mapping]] = ..., terminal: bool = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitIntentRequest(_message.Message):
    __slots__ = ("agent_id", "action", "payload", "reasoning", "idempotency_key", "labels", "module")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    action: str
    payload: _struct_pb2.Struct
    reasoning: str
    idempotency_key: str
    labels: _containers.ScalarMap[str, str]
    module: str
    def __init__(self, agent_id: _Optional[str] = ..., action: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reasoning: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., module: _Optional[str] = ...) -> None: ...

class SubmitIntentResponse(_message.Message):
    __slots__ = ("intent", "replayed")
    INTENT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    intent: Intent
    replayed: bool
    def __init__(self, intent: _Optional[_Union[Intent, _Mapping]] = ..., replayed: bool = ...) -> None: ...

class WatchDecisionRequest(_message.Message):
    __slots__ = ("intent_id",)
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    def __init__(self, intent_id: _Optional[str] = ...) -> None: ...

class GetIntentRequest(_message.Message):
    __slots__ = ("intent_id",)
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    def __init__(self, intent_id: _Optional[str] = ...) -> None: ...

class GetIntentResponse(_message.Message):
    __slots__ = ("intent",)
    INTENT_FIELD_NUMBER: _ClassVar[int]
    intent: Intent
    def __init__(self, intent: _Optional[_Union[Intent, _Mapping]] = ...) -> None: ...

class ListIntentsRequest(_message.Message):
    __slots__ = ("states", "agent_id", "module", "action", "created_after", "created_before", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[IntentState]
    agent_id: str
    module: str
    action: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[IntentState, str]]] = ..., agent_id: _Optional[str] = ..., module: _Optional[str] = ..., action: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntentsResponse(_message.Message):
    __slots__ = ("intents", "next_page_token")
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    intents: _containers.RepeatedCompositeFieldContainer[Intent]
    next_page_token: str
    def __init__(self, intents: _Optional[_Iterable[_Union[Intent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResolveIntentRequest(_message.Message):
    __slots__ = ("intent_id", "approve", "approver", "reason", "expected_version")
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    approve: bool
    approver: str
    reason: str
    expected_version: int
    def __init__(self, intent_id: _Optional[str] = ..., approve: bool = ..., approver: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ResolveIntentResponse(_message.Message):
    __slots__ = ("intent",)
    INTENT_FIELD_NUMBER: _ClassVar[int]
    intent: Intent
    def __init__(self, intent: _Optional[_Union[Intent, _Mapping]] = ...) -> None: ...

class CancelIntentRequest(_message.Message):
    __slots__ = ("intent_id", "reason")
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    reason: str
    def __init__(self, intent_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelIntentResponse(_message.Message):
    __slots__ = ("intent",)
    INTENT_FIELD_NUMBER: _ClassVar[int]
    intent: Intent
    def __init__(self, intent: _Optional[_Union[Intent, _Mapping]] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("agent_id", "module", "states", "include_progress")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    module: str
    states: _containers.RepeatedScalarFieldContainer[IntentState]
    include_progress: bool
    def __init__(self, agent_id: _Optional[str] = ..., module: _Optional[str] = ..., states: _Optional[_Iterable[_Union[IntentState, str]]] = ..., include_progress: bool = ...) -> None: ...

class GetIntentHistoryRequest(_message.Message):
    __slots__ = ("intent_id",)
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    intent_id: str
    def __init__(self, intent_id: _Optional[str] = ...) -> None: ...

class GetIntentHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("at", "kind", "state", "detail", "actor", "channel", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    kind: str
    state: IntentState
    detail: str
    actor: str
    channel: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[IntentState, str]] = ..., detail: _Optional[str] = ..., actor: _Optional[str] = ..., channel: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...
