"""State of the support graph and the typed contracts its nodes share.

The graph's state is checkpointed per thread (one thread per session) in PostgreSQL, so a session
resumes after a process restart. Nodes return only the keys they change.

Every structure more than one module reads has a type here, so the keys are written down once:
the Customer 360 (:class:`Customer360`), the memory loaded for a turn (:class:`Memory`), what an
action is about (:class:`Target`), the issue under discussion (:class:`Issue`), a proposal waiting
for the customer's answer (:class:`PendingAction`), the policy's decision
(:class:`PolicyDecision`, :class:`PolicyOutcome`) and a retention offer (:class:`Offer`). They are
``typing_extensions.TypedDict`` so that LangGraph can build the graph's input and output JSON
schemas on Python 3.11 (LangGraph Studio's input form, the dev server's MCP tools).

Amounts are in the tenant's currency units (USD in the bundled data); timestamps are ISO-8601
strings; scores are floats in [0, 1] unless stated otherwise.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

Event = Literal["message", "end_session"]

Decision = Literal[
    "respond",  # answered with facts from the 360 and memory
    "ask_identification",  # identity missing, unknown or not yet verified
    "confirm",  # a write action is proposed; waiting for an explicit "yes"
    "execute",  # a confirmed write action was carried out
    "deny",  # the policy forbids what was asked; the reply says why
    "escalate",  # warm handoff to a human agent
    "end",  # the session was ended and its episode written
]

#: How the consent reader (or a reviewer's decision) read the answer to a proposed write.
ConsentVerdict = Literal["approve", "reject", "unclear", "new_request"]

#: Outcome of the policy engine for one candidate action (``policy.engine``).
Outcome = Literal[
    "respond", "ask_identification", "deny", "clarify", "confirm", "execute", "escalate"
]


# --- Customer 360 -------------------------------------------------------------------------------


class Profile(TypedDict, total=False):
    """Who the customer is (L1 identity as the systems of record hold it)."""

    name: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    address: dict[str, Any]
    zip: str | None
    language: str | None
    timezone: str | None
    channels: list[str]


class Value(TypedDict, total=False):
    """Money the relationship is worth, in currency units (the tier's basis is one of these)."""

    lifetime_spend: float
    refunds: float
    net_spend: float
    order_count: int
    balances: float
    credit_balance: float


class OrderItem(TypedDict, total=False):
    """One line of an order: the variant bought (``item_id``) of a product, at a price."""

    item_id: str
    product_id: str
    name: str
    price: float
    options: dict[str, Any]


class Order(TypedDict, total=False):
    """A retail order with its items, tracking ids, payment methods and money paid/refunded."""

    order_id: str
    status: str
    total: float
    items: list[OrderItem]
    tracking_ids: list[str]
    payment_method_ids: list[str]
    paid: float
    refunded: float


class PaymentMethod(TypedDict, total=False):
    """A payment method on file (never a full card number): kind, brand, last four, balance."""

    id: str
    kind: str
    brand: str | None
    last_four: str | None
    balance: float | None


class Holding(TypedDict, total=False):
    """A product held: a bank account, a debit or credit card (``details`` per kind)."""

    id: str
    kind: str
    product: str
    status: str
    balance: float | None
    opened_on: str | None
    details: dict[str, Any]


class Transaction(TypedDict, total=False):
    """A posted or pending money movement; ``amount`` < 0 is money taken from the customer."""

    id: str
    holding_id: str | None
    date: str
    description: str
    amount: float
    category: str | None
    status: str


class Dispute(TypedDict, total=False):
    """A dispute on a transaction."""

    id: str
    transaction_id: str
    reason: str
    status: str
    submitted_on: str | None


class RetentionOfferRecord(TypedDict, total=False):
    """A retention offer made (and maybe applied) in a session, from the offers ledger."""

    id: str
    offer_id: str
    holding_id: str | None
    status: str
    offered_at: str | None
    applied_at: str | None
    expires_at: str | None


class InteractionSummary(TypedDict, total=False):
    """One past session as the CRM records it."""

    id: str
    channel: str
    started_at: str | None
    ended_at: str | None
    intent: str | None
    outcome: str | None
    summary: str | None


class Issue(TypedDict, total=False):
    """A customer's issue: what it is about, what was proposed, where it stands.

    ``subject_kind`` / ``subject_id`` / ``subject_label`` name what the issue is about in the
    vertical's terms (an order, a card, a transaction...). ``order_id``, ``item_ids`` and
    ``item_names`` are the retail details (the CRM's ``issues`` table keeps ``order_id``).
    ``contacts`` counts the sessions about the issue; ``episode_*`` and ``promises`` are joined
    from the episode that recorded it when it is loaded from memory.
    """

    id: str
    customer_id: str | None
    subject_kind: str | None
    subject_id: str | None
    subject_label: str | None
    order_id: str | None
    item_ids: list[str]
    item_names: list[str]
    kind: str
    description: str
    proposed_actions: list[str]
    opened_in: str
    status: str
    contacts: int
    created_at: str | None
    episode_summary: str
    episode_channel: str
    promises: list[str]


class Thread(TypedDict, total=False):
    """Something the customer may come back about, in one shape for every vertical.

    ``kind``: ``issue``, ``dispute``, ``handoff``, ``promise``, ``return``, ``exchange``,
    ``card_order``, ``retention_offer``; ``status``: ``open``, ``in_progress`` or ``resolved``
    (a resolved thread is reported as an outcome, never as open); ``state`` the record's own
    status; ``subject_*`` what it concerns; ``what`` what was raised or done; ``outcome`` how it
    ended; ``channel``, ``opened_at``, ``updated_at`` (ISO-8601). Built by ``crm.threads``.
    """

    id: str
    kind: str
    status: Literal["open", "in_progress", "resolved"]
    state: str | None
    subject_kind: str | None
    subject_id: str | None
    subject_label: str
    what: str
    outcome: str | None
    channel: str | None
    opened_at: str | None
    updated_at: str | None


class Customer360(TypedDict, total=False):
    """One customer's whole picture, built from the systems of record (``crm.customer360``).

    Lists are newest first where time matters (transactions: latest 20; interactions: latest 5).
    """

    customer_id: str
    tenant_id: str
    built_at: str
    profile: Profile
    tier: str
    value: Value
    orders: list[Order]
    payment_methods: list[PaymentMethod]
    holdings: list[Holding]
    transactions: list[Transaction]
    disputes: list[Dispute]
    billing: list[dict[str, Any]]
    retention_offers: list[RetentionOfferRecord]
    interactions: list[InteractionSummary]
    open_issues: list[Issue]
    threads: list[Thread]


# --- memory ---------------------------------------------------------------------------------------


class Episode(TypedDict, total=False):
    """An L3 episode: one session remembered (``memory_store.episodes``)."""

    id: str
    score: float | None
    summary: str
    conversationId: str
    channel: str
    intent: str | None
    outcome: str
    openIssues: list[Issue]
    promises: list[str]
    createdAt: str


class Features(TypedDict, total=False):
    """Online features of a customer (``features.store``): CLV in currency units, churn 0..1."""

    clv: float
    annual_value: float
    value_basis: float
    churn_propensity: float
    tenure_days: int
    open_disputes: int
    complaints: int
    recent_intents: list[str]
    tier: str | None
    computed_at: str


class MemoryBudget(TypedDict):
    """Episode text loaded this turn against the tenant's budget (characters)."""

    chars: int
    limit: int
    dropped: int


class Memory(TypedDict, total=False):
    """Long-term memory loaded for a turn (``memory_store.context``).

    ``source`` says where the 360 and layers came from (``redis``, ``postgres`` or
    ``postgres-redis-down``); ``episodes`` are the L3 episodes relevant to the message, best
    first; ``open_episode`` the latest episode with an open issue or promise; ``open_issue`` the
    newest open CRM issue joined with its episode.
    """

    source: str
    features: Features | None
    l1_identity: dict[str, Any]
    l2_history: dict[str, Any]
    l4_prefs_mood: dict[str, Any]
    episodes: list[Episode]
    open_episode: Episode | None
    open_issue: Issue | None
    budget: MemoryBudget


# --- one turn's reading of the message ------------------------------------------------------------


class Signals(TypedDict, total=False):
    """Sub-signals of the latest message (``intents.signals``).

    ``frustration``, ``urgency``, ``vulnerability`` in [0, 1]; ``sentiment`` in [−1, 1];
    ``confirmation`` is ``yes`` / ``no`` / ``None`` (``yes`` only for an approval read by
    ``await_consent``, whose verdict is ``consent``); ``ranking`` the classifier's top three
    ``(intent, probability)``; ``unclear`` an out-of-scope or low-confidence message;
    ``answers_pending`` the message supplies the detail a pending proposal asked for;
    ``closing`` the message is an ending (thanks, goodbye, "that's all") and asks for nothing;
    ``nothing_asked`` the message only introduces the customer or is such an ending, so there
    is nothing to search for.
    """

    frustration: float
    urgency: float
    vulnerability: float
    vulnerability_kind: str | None
    sentiment: float
    human_request: bool
    churn_threat: bool
    confirmation: str | None
    consent: ConsentVerdict | None
    cues: list[str]
    ranking: list[tuple[str, float]]
    unclear: bool
    answers_pending: bool
    closing: bool
    nothing_asked: bool


class Target(TypedDict, total=False):
    """What an action is about, resolved by the tenant's vertical.

    ``kind`` is the policy's target kind (``order``, ``card``, ``transaction``, ``offer``, or a
    third vertical's own); ``id`` the record's id (``None`` when it cannot be told without
    asking, ``candidates`` then lists labels to ask about); ``status`` the record's status in
    the systems of record (lower case; ``None`` if the customer has no such record); ``label``
    how the customer calls it; ``source`` where it was found (``message``, ``pending_action``,
    ``session_issue``, ``memory``, ``inferred``, ``none``...); ``args`` the vertical's action
    arguments (retail: items, payment method, address...).
    """

    kind: str | None
    id: str | None
    label: str | None
    status: str | None
    source: str
    candidates: list[str]
    args: dict[str, Any]


class Candidate(TypedDict, total=False):
    """A next-best-action candidate with its score, the formula's terms and weights."""

    action: str
    score: float
    terms: dict[str, float]
    weights: dict[str, float]
    target: Target


class PendingAction(TypedDict, total=False):
    """A proposal waiting for the customer: a write to confirm, or a detail the agent asked for.

    ``awaiting`` names the detail still missing (``new_address``, ``new_item``...; ``None``
    when only a "yes" is awaited). A question still open is never a proposal to accept.
    ``asked_again`` is set once the agent has asked a second, plainer time. ``proposed_at``
    (ISO 8601, UTC) is when the agent first asked for the "yes": a change the ledger recorded
    after it was made by a confirmation of this very proposal (a turn cut short before its
    answer reached the customer), not earlier in the conversation.
    """

    action: str
    intent: str
    target: Target
    awaiting: str | None
    asked_again: bool
    proposed_at: str


class RuleVerdict(TypedDict):
    """One rule's verdict, as stored in the audit trail."""

    rule: str
    passed: bool
    reason: str


class PolicyDecision(TypedDict, total=False):
    """The policy's decision on one candidate action, with every rule evaluated."""

    action: str
    outcome: Outcome
    reason: str
    rules: list[RuleVerdict]
    target: Target
    score: float


class Offer(TypedDict, total=False):
    """A retention offer the policy approved in this session; a "yes" applies it.

    ``terms`` are the offer's terms on the customer's product (vertical-specific, e.g. the card
    and its annual fee); ``status`` becomes ``applied`` once applied.
    """

    offer_id: str
    holding_id: str | None
    terms: dict[str, Any]
    disclosure_required: bool
    rules: list[RuleVerdict]
    label: str
    status: str


class PolicyOutcome(PolicyDecision, total=False):
    """The turn's policy outcome: the top decision, the allowed alternatives, a retention offer."""

    alternatives: list[PolicyDecision]
    retention_offer: Offer | None


class Identification(TypedDict, total=False):
    """This turn's identification.

    Attributes:
        status: ``authenticated`` (verified by the tenant's policy), ``partial`` (facts given,
            more needed), ``failed`` (a whole attempt verified nobody), ``locked`` (too many
            failures: this session cannot verify), ``missing`` (nothing given) or ``conflict``
            (a second customer in one conversation).
        detail: why, for the audit.
        new: verified on this turn.
        asks: the facts still needed (``partial``, ``failed``), as the policy names them.
        code_offered: a one-time code may be part of the answer.
        fresh: this message gave verification facts (or asked for a new code).
    """

    status: Literal["authenticated", "partial", "failed", "locked", "missing", "conflict"]
    detail: str
    new: bool
    asks: list[str]
    code_offered: bool
    fresh: bool


class VerificationProgress(TypedDict, total=False):
    """Verification between messages (never shown in a public view of the thread).

    Attributes:
        candidate: the customer the facts so far point at, if one.
        proven: the fact kinds proven for the candidate.
        given: the fact kinds given so far in this attempt.
        code_offered: the customer was told a one-time code may have been sent.
        failures: failed attempts in this session.
        locked: the session reached the tenant's failure limit.
        verified_with: the policy's way that verified.
    """

    candidate: str | None
    proven: list[str]
    given: list[str]
    code_offered: bool
    failures: int
    locked: bool
    verified_with: str | None


class TurnRecord(TypedDict, total=False):
    """One turn in the session's history (what the handoff panel's "tried" lists)."""

    turn: int
    intent: str | None
    decision: str
    action: str
    frustration: float
    human_request: bool
    unclear: bool


class ActionRecord(TypedDict, total=False):
    """An action proposed or done this turn, for the API response.

    ``status`` is ``proposed``, ``offered``, ``done`` (it changed the systems of record in this
    turn; it carries its ``result``) or ``already_done`` (the same change ran earlier in the
    session; nothing changed now).
    """

    action: str
    status: str
    target: Target
    result: dict[str, Any]
    offer_id: str
    terms: dict[str, Any]


# --- the graph's state ----------------------------------------------------------------------------


class InputState(TypedDict, total=False):
    """What a caller sends for one turn.

    Attributes:
        messages: the customer's new message (appended to the thread's transcript).
        identity: identifiers supplied out of band by the channel, any of ``email``, ``phone``,
            ``customer_id``, ``name`` + ``zip`` (e.g. a logged-in widget or caller id).
        event: ``"message"`` (default) or ``"end_session"`` to close the session and write its
            episode.
        end_reason: why the session ends (``"explicit"`` or ``"idle_timeout"``), with
            ``event="end_session"``.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    identity: dict[str, str]
    event: Event
    end_reason: str


class OutputState(TypedDict, total=False):
    """What one turn answers: the reply, the decision and what was done or proposed.

    Attributes:
        messages: the session's transcript, the agent's reply last.
        reply: the agent's reply text this turn.
        decision: what the agent did this turn.
        intent: classified intent of the latest message.
        actions: actions proposed or done this turn.
        handoff: the warm handoff packet when escalated.
        session_status: ``open`` or ``ended``.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    reply: str
    decision: Decision
    intent: str
    actions: list[ActionRecord]
    handoff: dict[str, Any] | None
    session_status: Literal["open", "ended"]


class State(InputState, OutputState, total=False):
    """The whole checkpointed state of one session.

    Attributes:
        customer_id: the identified customer (one per session), or absent.
        authenticated: True once identified by a method the tenant accepts as authentication.
        auth_method: the name of the tenant's verification way that verified the customer
            (``name_zip``, ``email_code``, ``date_of_birth+email``, ``site_token``...).
        verified_for: the scopes verified (``account_data``, ``writes``, ``memory``).
        verification: progress of verification between messages.
        identification: outcome of this turn's identification.
        c360: the Customer 360 loaded this turn.
        memory: long-term memory loaded this turn.
        intent_confidence: the classifier's probability of ``intent``.
        signals: sub-signals of the latest message.
        entities: what the message names, as the tenant's vertical reads it (retail: order ids,
            products, reason, address; bank: amounts, last four digits, card kind, words).
        resolutions: retrieved resolution records, documents and offers, best first.
        candidates: next-best-action candidates, best first.
        policy: the policy outcome of this turn.
        pending_action: a proposal waiting for the customer's answer.
        awaiting_consent: this turn's reply asks for a yes to ``pending_action`` (a write); the
            run then pauses in ``await_consent``.
        issue: the issue under discussion in this session (persisted as an open CRM issue).
        turn: number of customer turns so far.
        history: one entry per turn (appended).
        memory_job: status of the memory job queued when the session ended.
        contact_counted: the open issue whose contact count this session already increased.
        offer: the retention offer made in this session, which a confirmed "yes" applies.
        consent: the answer to the write proposed last turn, read by ``await_consent`` (only on
            the turn that answers it).
        superseded: a proposal the customer's answer replaced with another request.
    """

    customer_id: str
    authenticated: bool
    auth_method: str
    verified_for: list[str]
    verification: VerificationProgress
    identification: Identification
    c360: Customer360
    memory: Memory
    intent_confidence: float
    signals: Signals
    entities: dict[str, Any]
    offer: Offer | None
    resolutions: list[dict[str, Any]]
    candidates: list[Candidate]
    policy: PolicyOutcome
    pending_action: PendingAction | None
    awaiting_consent: bool
    issue: Issue | None
    turn: int
    history: Annotated[list[TurnRecord], operator.add]
    memory_job: str | None
    contact_counted: str | None
    consent: ConsentVerdict | None
    superseded: PendingAction | None
