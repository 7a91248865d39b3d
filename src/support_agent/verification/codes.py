"""One-time verification codes: 6 digits to the email or phone on file, 10 minutes, 5 tries.

A code is issued for one session and one customer (:func:`issue_code`), sent through a pluggable
:class:`CodeSender` in the background (the reply, and its timing, must not depend on whether the
address belongs to a customer), and stored only as a salted SHA-256 (``verification_codes``).
:func:`check_code` accepts it once, within ``code_ttl_s`` and ``code_tries`` wrong entries
(NIST SP 800-63B §5.1.3: out-of-band secrets are single use, short-lived and attempt-limited).

Senders (``CODE_SENDER``):

- ``file``: development and tests; one JSON line per code (``{"to", "channel", "code",
  "tenant_id", "sent_at"}``) appended to ``CODE_OUTBOX``. The code is never logged.
- ``smtp``: email through an SMTP server with ``aiosmtplib`` (STARTTLS by default). Codes for a
  phone number need an SMS gateway; this sender refuses them (:class:`CodeNotSentError`) and the
  tenant's pack should then send codes to email only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from support_agent.errors import SupportAgentError
from support_agent.services import Services
from support_agent.settings import Settings

logger = logging.getLogger(__name__)

Channel = Literal["email", "phone"]


class CodeNotSentError(SupportAgentError):
    """A sender could not deliver a code (logged; the customer is told nothing different)."""

    status = 503
    code = "CODE_NOT_SENT"


class CodeSender(Protocol):
    """Delivers a one-time code to a customer's contact on file."""

    async def send(self, tenant_name: str, channel: Channel, to: str, code: str) -> None:
        """Send ``code`` to ``to`` (an email address or a phone number).

        Raises:
            CodeNotSentError: the code could not be delivered.
        """


class FileSender:
    """Appends each code as a JSON line to a file (development and tests).

    Args:
        path: the outbox file (created with its folder).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, tenant_name: str, channel: Channel, to: str, code: str) -> None:
        """Append ``{"to", "channel", "code", "tenant", "sent_at"}`` to the outbox."""
        line = json.dumps({"to": to, "channel": channel, "code": code, "tenant": tenant_name,
                           "sent_at": datetime.now(UTC).isoformat()})  # fmt: skip
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class SmtpSender:
    """Emails each code through an SMTP server (``aiosmtplib``).

    Args:
        settings: ``smtp_host``, ``smtp_port``, ``smtp_username``, ``smtp_password``,
            ``smtp_from``, ``smtp_starttls``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, tenant_name: str, channel: Channel, to: str, code: str) -> None:
        """Email the code.

        Raises:
            CodeNotSentError: a phone number (no SMS gateway), or the SMTP server refused or
                could not be reached.
        """
        if channel != "email":
            raise CodeNotSentError("the smtp sender sends codes to email addresses only")
        s = self.settings
        message = EmailMessage()
        message["From"], message["To"] = s.smtp_from, to
        message["Subject"] = f"Your {tenant_name} verification code"
        message.set_content(
            f"Your verification code is {code}. It is valid for 10 minutes.\n"
            "If you did not ask for it, you can ignore this email."
        )
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        try:
            await aiosmtplib.send(message, hostname=s.smtp_host, port=s.smtp_port,
                                  username=s.smtp_username, password=password,
                                  start_tls=s.smtp_starttls, timeout=10)  # fmt: skip
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise CodeNotSentError(f"SMTP delivery failed ({type(exc).__name__})") from exc


def sender_for(settings: Settings) -> CodeSender:
    """The sender ``CODE_SENDER`` names (``file`` → :class:`FileSender` on ``code_outbox``)."""
    if settings.code_sender == "smtp":
        return SmtpSender(settings)
    return FileSender(settings.code_outbox or settings.data_dir / "outbox" / "codes.jsonl")


def _digest(salt: bytes, code: str) -> bytes:
    return hashlib.sha256(salt + code.encode()).digest()


#: Background work in flight (kept referenced until done): code issues and sends.
_SENDS: set[asyncio.Task[None]] = set()


def in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` in a task of its own, kept until done (:func:`wait_for_sends` awaits it).

    Used for everything that happens only when a contact belongs to a customer, so the reply to
    an email that is nobody's takes the same time.
    """
    task = asyncio.create_task(work)
    _SENDS.add(task)
    task.add_done_callback(_SENDS.discard)


async def _deliver(
    sender: CodeSender, tenant_name: str, channel: Channel, to: str, code: str
) -> None:
    try:
        await sender.send(tenant_name, channel, to, code)
    except CodeNotSentError as exc:
        logger.warning("verification_code_not_sent", extra={"error": exc.message})


async def issue_code(
    services: Services,
    tenant_id: str,
    session_id: str,
    customer_id: str,
    channel: Channel,
    to: str,
    *,
    ttl_s: int,
    per_hour: int,
) -> bool:
    """Create a code for this session and customer and send it in the background.

    Earlier unused codes of the session are voided (one live code per session). At most
    ``per_hour`` codes go to one customer an hour (no inbox flooding).

    Args:
        services: the open services.
        tenant_id: the tenant.
        session_id: the session the code verifies in.
        customer_id: the customer the code proves.
        channel: ``email`` or ``phone``.
        to: the email address or phone number on file (never one the customer typed).
        ttl_s: seconds the code is valid.
        per_hour: most codes sent to this customer an hour.

    Returns:
        Whether a code was issued (``False``: the hourly cap was reached).
    """
    code = f"{secrets.randbelow(10**6):06d}"
    salt = secrets.token_bytes(16)
    async with services.pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM verification_codes WHERE tenant_id = %s"
                " AND customer_id = %s AND created_at > now() - interval '1 hour'",
                (tenant_id, customer_id),
            )
        ).fetchone()
        if row is not None and int(row["n"]) >= per_hour:
            return False
        await conn.execute(
            "UPDATE verification_codes SET used_at = now() WHERE tenant_id = %s"
            " AND session_id = %s AND used_at IS NULL",
            (tenant_id, session_id),
        )
        await conn.execute(
            "INSERT INTO verification_codes (tenant_id, session_id, customer_id, channel, salt,"
            " code_hash, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (tenant_id, session_id, customer_id, channel, salt, _digest(salt, code),
             datetime.now(UTC) + timedelta(seconds=ttl_s)),
        )  # fmt: skip
    name = services.tenants.config(tenant_id).name
    in_background(_deliver(sender_for(services.settings), name, channel, to, code))
    return True


async def check_code(
    services: Services, tenant_id: str, session_id: str, code: str, *, max_tries: int
) -> tuple[str, Channel] | None:
    """The customer a code typed in this session proves, and where the code went, or ``None``.

    The session's live code (unused, unexpired, under ``max_tries`` wrong entries) is compared in
    constant time; a match is used up, a miss counts a try.

    Returns:
        ``(customer id, "email" | "phone")``: the customer the code was issued for and the
        contact on file it proves the customer holds; ``None``: no live code, or a wrong one.
    """
    async with services.pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "SELECT id, customer_id, channel, salt, code_hash FROM verification_codes"
                " WHERE tenant_id = %s AND session_id = %s AND used_at IS NULL"
                " AND expires_at > now() AND tries < %s"
                " ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
                (tenant_id, session_id, max_tries),
            )
        ).fetchone()
        if row is None:
            return None
        if hmac.compare_digest(_digest(bytes(row["salt"]), code), bytes(row["code_hash"])):
            await conn.execute(
                "UPDATE verification_codes SET used_at = now() WHERE id = %s", (row["id"],)
            )
            return str(row["customer_id"]), row["channel"]
        await conn.execute(
            "UPDATE verification_codes SET tries = tries + 1 WHERE id = %s", (row["id"],)
        )
    return None


async def wait_for_sends(timeout_s: float = 10.0) -> None:
    """Wait for the background work in flight, and what it started (tests, a clean shutdown)."""
    while _SENDS:
        await asyncio.wait(set(_SENDS), timeout=timeout_s)
