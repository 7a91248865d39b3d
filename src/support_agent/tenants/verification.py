"""A tenant's verification policy: which facts prove who a customer is, how many, and for what.

Declared in ``tenant.yaml`` under ``verification:`` and validated with ``extra="forbid"``. A
customer is *verified* for a scope (``account_data``: anything on the account; ``writes``: a
change to it; ``memory``: what earlier conversations recorded) when the facts proven in this
conversation satisfy one of the scope's **ways**. A way is a set of facts that must all be proven,
e.g. ``[name, zip]``; ``at_least: {count: 2, of: [...]}`` declares every pair (or triple…) of
the listed facts as ways at once (the bank's "any 2 out of date of birth, email, phone number,
address").

Facts (:data:`Factor`), each proven against the customer's record, never against what the
conversation or memory says:

============== ==========================================================================
fact           proven when
============== ==========================================================================
email          the email on file (``customers.email``) is typed
phone          the phone on file is typed (digits compared)
date_of_birth  the date of birth on file is typed (``03/15/1992``, ``1992-03-15``,
               ``March 15, 1992``)
address        the postal address on file: its house number, street name and city or zip
zip            the zip code on file
name           the first and last name on file
customer_id    the account's user id
one_time_code  a 6-digit code this service sent to the email or phone on file
               (``verification.codes``), typed back within its lifetime
site_token     the tenant site's signed customer token (the API checked its signature)
vouched        a server-side integration (secret or agent key) passed the identity
============== ==========================================================================

Nothing said in the conversation or found in memory changes the policy: it is read from the pack
only, and the identify node applies it to facts checked against the systems of record.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Factor = Literal[
    "email",
    "phone",
    "date_of_birth",
    "address",
    "zip",
    "name",
    "customer_id",
    "one_time_code",
    "site_token",
    "vouched",
]
Scope = Literal["account_data", "writes", "memory"]
#: Every scope, in the order they are reported.
SCOPES: tuple[Scope, ...] = ("account_data", "writes", "memory")

#: How each fact is asked for, in the customer's words.
FACT_WORDS: dict[str, str] = {
    "email": "the email address on your account",
    "phone": "your phone number",
    "date_of_birth": "your date of birth",
    "address": "your home address",
    "zip": "your zip code",
    "name": "your full name",
    "customer_id": "your user id",
    "one_time_code": "the code we send you",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AtLeast(_Strict):
    """``count`` distinct facts out of ``of`` (each combination becomes a way)."""

    count: int = Field(ge=1, le=4)
    of: tuple[Factor, ...]

    @model_validator(mode="after")
    def _enough(self) -> AtLeast:
        if len(set(self.of)) < self.count:
            raise ValueError("at_least.of must list at least `count` distinct facts")
        return self


class VerificationPolicy(_Strict):
    """What verifies a customer of this tenant (see the module docstring).

    Attributes:
        source: where the policy comes from (the tenant's own rule, quoted or cited).
        ask: how the agent asks for verification, in the customer's words ("the email address
            on your account, or your full name and zip code"); default: built from the ways.
        ways: named sets of facts, each sufficient when all its facts are proven.
        at_least: ``count`` of the listed facts (named ``"any N of …"``), added to ``ways``.
        scopes: for a scope, the names of the ways that verify for it; a scope not listed
            accepts every way.
        code_to: where one-time codes may be sent (``email``, ``phone``): the contact on file;
            empty: this tenant sends none.
        code_ttl_s: seconds a code stays valid (600: 10 minutes).
        code_tries: wrong entries before a code is void (5).
        codes_per_hour: most codes sent to one customer an hour (3): no inbox flooding.
        max_failures: failed attempts a session may make before it can no longer verify (5).
        customer_max_failures: failed attempts against one customer an hour, over every session
            and channel, before that customer cannot be verified in conversation for the hour.
        client_max_failures: failed attempts from one client address an hour (20).
    """

    source: str
    ask: str | None = None
    ways: dict[str, tuple[Factor, ...]] = {}
    at_least: AtLeast | None = None
    scopes: dict[Scope, tuple[str, ...]] = {}
    code_to: tuple[Literal["email", "phone"], ...] = ()
    code_ttl_s: int = Field(default=600, ge=60, le=3600)
    code_tries: int = Field(default=5, ge=1, le=10)
    codes_per_hour: int = Field(default=3, ge=1, le=20)
    max_failures: int = Field(default=5, ge=1, le=20)
    customer_max_failures: int = Field(default=10, ge=1, le=100)
    client_max_failures: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _coherent(self) -> VerificationPolicy:
        if not self.all_ways():
            raise ValueError("a verification policy needs at least one way (ways or at_least)")
        names = set(self.all_ways())
        for scope, allowed in self.scopes.items():
            unknown = set(allowed) - names
            if unknown:
                raise ValueError(f"scope {scope} names unknown ways: {sorted(unknown)}")
        uses_code = any("one_time_code" in way for way in self.all_ways().values())
        if uses_code and not self.code_to:
            raise ValueError("a way uses one_time_code but code_to names nowhere to send it")
        return self

    def all_ways(self) -> dict[str, frozenset[str]]:
        """Every way by name: ``ways`` plus the combinations of ``at_least``."""
        out: dict[str, frozenset[str]] = {
            name: frozenset(facts) for name, facts in self.ways.items()
        }
        if self.at_least is not None:
            for combo in combinations(dict.fromkeys(self.at_least.of), self.at_least.count):
                out["+".join(combo)] = frozenset(combo)
        return out

    def way_for(
        self, proven: set[str] | frozenset[str], scope: Scope = "account_data"
    ) -> str | None:
        """The name of the first way the proven facts satisfy for ``scope``, or ``None``."""
        allowed = self.scopes.get(scope)
        for name, facts in self.all_ways().items():
            if (allowed is None or name in allowed) and facts <= proven:
                return name
        return None

    def scopes_met(self, proven: set[str] | frozenset[str]) -> list[str]:
        """The scopes the proven facts verify for (in :data:`SCOPES` order)."""
        return [scope for scope in SCOPES if self.way_for(proven, scope) is not None]

    def asking(self) -> str:
        """How to ask for verification: ``ask``, else the facts of the ways, in words."""
        if self.ask:
            return self.ask
        if self.at_least is not None:
            words = [FACT_WORDS[f] for f in dict.fromkeys(self.at_least.of) if f in FACT_WORDS]
            return f"{self.at_least.count} of these: {either(words)}"
        ways = [
            " and ".join(FACT_WORDS[f] for f in sorted(way, key=_FACT_ORDER.index))
            for way in self.all_ways().values()
            if way and all(f in FACT_WORDS and f != "one_time_code" for f in way)
        ]
        return either(list(dict.fromkeys(ways)))

    def conversational_facts(self) -> list[str]:
        """The facts a customer can give in conversation, in the policy's order."""
        facts: list[str] = []
        for way in self.all_ways().values():
            for fact in sorted(way, key=_FACT_ORDER.index):
                if fact in FACT_WORDS and fact not in facts:
                    facts.append(fact)
        return facts

    def complete_attempt(self, given: set[str] | frozenset[str]) -> bool:
        """Whether the facts given make a whole attempt (a wrong one then counts as a failure).

        That is: enough of them that a correct set would satisfy some way.
        """
        return any(way <= given for way in self.all_ways().values())

    def missing_for(self, given: set[str] | frozenset[str]) -> list[str]:
        """The facts that, added to ``given``, would complete a way, nearest ways first.

        Returns:
            Fact names (conversational ones only), e.g. ``["zip", "one_time_code"]``.
        """
        ranked = sorted(
            (len(way - given), i, way) for i, way in enumerate(self.all_ways().values())
        )
        out: list[str] = []
        for _, _, way in ranked:
            if not way & given and given:
                continue  # a way sharing nothing with what was given is not the nearest
            for fact in sorted(way - given, key=_FACT_ORDER.index):
                if fact in FACT_WORDS and fact not in out:
                    out.append(fact)
        return out


def either(words: list[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b or c"``."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def facts_in_words(facts: list[str]) -> str:
    """The facts a customer is asked for, in words.

    ``["zip", "one_time_code"]`` → ``"your zip code or the code we send you"``.
    """
    return either([FACT_WORDS[f] for f in facts if f in FACT_WORDS])


_FACT_ORDER: list[str] = [
    "name",
    "email",
    "customer_id",
    "zip",
    "date_of_birth",
    "phone",
    "address",
    "one_time_code",
    "site_token",
    "vouched",
]
