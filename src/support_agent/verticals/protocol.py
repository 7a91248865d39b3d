"""The one interface every line of business implements, and what a turn hands it.

A **vertical** (retail, bank, or a business of one's own) knows its records and its words; the
graph's generic nodes know neither. For each turn a vertical:

1. reads the message: the entities it names (:meth:`Vertical.entities`) and whether it answers
   a detail the agent asked for (:meth:`Vertical.answers_pending`);
2. resolves what each candidate action is about, with the record's status
   (:meth:`Vertical.resolve_targets`) and whether that status allows the action
   (:meth:`Vertical.eligible`);
3. proposes a write, or asks for what is missing (:meth:`Vertical.propose`);
4. executes a confirmed write, idempotently (:meth:`Vertical.execute`, with
   ``actions.ledger.idempotent``);
5. words the proposal, the clarifying question, the result and the refusal, from its own
   templates (:meth:`Vertical.propose`, :meth:`Vertical.clarify`, :meth:`Vertical.word_result`,
   :meth:`Vertical.refuse`), answers its informational actions (:meth:`Vertical.inform`) and
   says where an issue stands (:meth:`Vertical.subject_status`).

A tenant names its vertical in ``tenant.yaml`` (``vertical.name``: a built-in name or an import
path ``package.module:Class``) with the vertical's business numbers (``vertical.settings``,
validated at start-up by the vertical's :attr:`Vertical.settings_model`). Which actions exist,
who may take them and on which target statuses stays the tenant's ``policy.yaml``; the
next-best-action weights and affinities stay in ``tenant.yaml``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from support_agent import templates
from support_agent.actions.ledger import ActionCall
from support_agent.intents.classifier import IntentClassifier
from support_agent.policy.config import ActionRule, Policy
from support_agent.policy.engine import PolicyDecision as Verdict
from support_agent.policy.retention import OfferFacts
from support_agent.services import Services
from support_agent.state import (
    Customer360,
    Decision,
    Issue,
    Memory,
    Offer,
    PendingAction,
    PolicyDecision,
    Signals,
    State,
    Target,
)
from support_agent.tenants import TenantConfig, TenantPack
from support_agent.transcript import last_customer_text


@dataclass(frozen=True)
class TurnDeps:
    """What a turn reaches, resolved once per turn (``Context.deps``).

    Attributes:
        services: the process's connections.
        pack: the tenant's validated configuration and policy.
        vertical: the tenant's vertical.
        intent_model: loads the tenant's intent classifier (blocking: call it in a thread).
        loaded_intent_model: the classifier if already loaded, else ``None`` (never blocks).
    """

    services: Services
    pack: TenantPack
    vertical: Vertical
    intent_model: Callable[[], IntentClassifier]
    loaded_intent_model: Callable[[], IntentClassifier | None] = lambda: None

    @property
    def config(self) -> TenantConfig:
        """The tenant's configuration."""
        return self.pack.config

    @property
    def policy(self) -> Policy:
        """The tenant's policy."""
        return self.pack.policy


@dataclass(frozen=True)
class Turn:
    """One turn as the nodes and the vertical see it: the state plus who, where and with what.

    Attributes:
        state: the graph state at this node.
        deps: the turn's dependencies.
        tenant_id: the tenant.
        session_id: the session (the thread is ``{tenant_id}:{session_id}``).
        channel: the session's channel.
        client: the client's address as the API saw it (verification limits), if known.
    """

    state: State
    deps: TurnDeps
    tenant_id: str
    session_id: str
    channel: str
    client: str | None = None

    @property
    def text(self) -> str:
        """The latest customer message."""
        return last_customer_text(self.state.get("messages"))

    @property
    def c360(self) -> Customer360:
        """The Customer 360 loaded this turn (empty before authentication)."""
        return self.state.get("c360") or {}

    @property
    def memory(self) -> Memory:
        """The memory loaded this turn."""
        return self.state.get("memory") or {}

    @property
    def signals(self) -> Signals:
        """The message's sub-signals."""
        return self.state.get("signals") or {}

    @property
    def entities(self) -> dict[str, Any]:
        """What the message names, as the vertical read it."""
        return self.state.get("entities") or {}

    @property
    def pending(self) -> PendingAction | None:
        """The proposal waiting for the customer's answer."""
        return self.state.get("pending_action")

    @property
    def intent(self) -> str:
        """The turn's intent (``other`` when none)."""
        return str(self.state.get("intent") or "other")

    @property
    def open_issue(self) -> Issue | None:
        """The customer's open issue from memory."""
        return self.memory.get("open_issue")


@dataclass(frozen=True)
class Proposal:
    """What the agent says and remembers when the policy asks for confirmation.

    Attributes:
        reply: the customer-facing text.
        decision: ``confirm`` (a "yes" will act), ``respond`` (a detail is asked for first) or
            ``escalate`` (only a human can go on; ``handoff_reason`` says why).
        pending: the proposal or question to remember (``None`` clears it).
        issue: the issue this opens or continues (``None``: keep the session's issue).
        proposed: list the action as proposed in the turn's response.
        handoff_reason: why a human must take over (with ``decision="escalate"``).
    """

    reply: str
    decision: Decision = "confirm"
    pending: PendingAction | None = None
    issue: Issue | None = None
    proposed: bool = False
    handoff_reason: str | None = None


@dataclass(frozen=True)
class Refusal:
    """What the agent says when the policy denies an action, and the issue it keeps open."""

    reply: str
    issue: Issue | None = None


class NoSettings(BaseModel):
    """A vertical without business numbers of its own."""

    model_config = ConfigDict(extra="forbid")


class Vertical(ABC):
    """A line of business behind the generic graph (see the module docstring).

    Subclasses set :attr:`name` and, when they have business numbers, :attr:`settings_model`; the
    tenant's ``vertical.settings`` are validated against it and passed to ``__init__``.
    Abstract methods are what every vertical must do; the others have generic defaults.

    Args:
        settings: the tenant's validated vertical settings.
        config: the tenant's configuration.
    """

    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: BaseModel, config: TenantConfig) -> None:
        self.settings = settings
        self.config = config

    # --- reading the message -----------------------------------------------------------------

    @abstractmethod
    def entities(self, text: str, c360: Customer360) -> dict[str, Any]:
        """What the message names in this vertical's terms (JSON-serialisable)."""

    def answers_pending(self, turn: Turn, entities: dict[str, Any]) -> bool:
        """Whether the message supplies the detail ``turn.pending["awaiting"]`` asked for."""
        return False

    def names_subject(self, entities: dict[str, Any]) -> bool:
        """Whether the message names a particular record (then it is not a bare follow-up)."""
        return False

    def prior(self, action: str, turn: Turn) -> float | None:
        """An affinity that replaces the tenant's table for this message, or ``None``."""
        return None

    # --- targets -----------------------------------------------------------------------------

    @abstractmethod
    async def resolve_targets(
        self, rules: Mapping[str, ActionRule], turn: Turn
    ) -> dict[str, Target]:
        """What each candidate action is about, with the record's status.

        Args:
            rules: the candidate actions and their policy rules.
            turn: the turn.

        Returns:
            ``{action: Target}`` for every action in ``rules``; a target whose record cannot be
            told without asking has ``id=None`` and ``candidates`` to ask about.
        """

    def eligible(self, action: str, rule: ActionRule, target: Target) -> bool:
        """Whether the target's status allows the action, for ranking (the policy decides)."""
        return True

    # --- proposing and acting ----------------------------------------------------------------

    @abstractmethod
    def propose(self, decision: PolicyDecision, turn: Turn) -> Proposal:
        """The proposal of a write the policy allows once confirmed, or the question first."""

    @abstractmethod
    async def execute(self, call: ActionCall, target: Target, turn: Turn) -> dict[str, Any]:
        """Carry out a confirmed write on the systems of record, idempotently.

        Returns:
            The action's result (JSON-serialisable), as recorded in ``account_actions``.

        Raises:
            NeedsHumanError: the agent has no tool for it; a human completes it.
            InvalidRequestError: the record's state no longer allows it, or a detail is missing.
            NotFoundError: the record is not the customer's.
        """

    @abstractmethod
    def word_result(self, action: str, target: Target, result: dict[str, Any], turn: Turn) -> str:
        """What the customer hears after the write succeeded (every fact from ``result``)."""

    def clarify(self, decision: PolicyDecision, turn: Turn) -> str:
        """The question when the policy cannot tell which record or items are meant."""
        target = decision.get("target") or {}
        return templates.which_record(
            target.get("kind") or "record", target.get("candidates") or []
        )

    def refuse(self, decision: PolicyDecision, turn: Turn) -> Refusal:
        """The refusal when the policy denies an action (and the issue it keeps open)."""
        return Refusal(templates.refused(decision.get("reason")))

    def issue_on_handoff(self, decision: PolicyDecision, turn: Turn) -> Issue | None:
        """The issue a warm handoff hands over when the session has none yet."""
        return None

    # --- informing ---------------------------------------------------------------------------

    def inform(self, action: str, target: Target, turn: Turn) -> str | None:
        """The answer to an informational action of this vertical, or ``None`` if it has none."""
        return None

    @abstractmethod
    def subject_status(self, issue: Issue, turn: Turn) -> str:
        """Where the record an open issue is about stands now, from the 360."""

    def describe_subject(self, issue: Issue) -> str:
        """How the customer calls what an issue is about (``"the Water Bottle from order #W1"``)."""
        return f"the {issue.get('subject_label') or 'item'}"

    def action_words(self, actions: list[str]) -> str:
        """Actions in the customer's words, joined with "or" (``"a return or an exchange"``)."""
        return " or ".join(a.replace("_", " ") for a in actions)

    # --- retention ---------------------------------------------------------------------------

    async def choose_retention_offer(
        self, turn: Turn, facts: OfferFacts
    ) -> tuple[Offer | None, list[Verdict]]:
        """The first retention offer the policy allows this customer, and the decisions made."""
        return None, []

    def word_offer(self, offer: Offer) -> str:
        """A retention offer with its terms and, when required, its disclosure."""
        return templates.loyalty_offer()

    # --- data --------------------------------------------------------------------------------

    async def load(self, services: Services, tenant_id: str) -> dict[str, int]:
        """Load the vertical's public data set into the systems of record (idempotent).

        Returns:
            Rows inserted per table.
        """
        return {}
