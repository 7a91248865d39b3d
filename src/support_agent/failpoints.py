"""Failpoints for crash tests: points where a process can be made to die as a killed one would.

With ``SUPPORT_AGENT_FAILPOINT=<name>`` in its environment, a process reaching the failpoint
``<name>`` exits at once with status :data:`EXIT_STATUS` (``os._exit``: no cleanup, no flush, no
``finally``), exactly as a process killed at that instant. Unset (production), a failpoint is one
dictionary lookup.

Failpoints:

- ``memory_after_episode``: a memory worker, after writing a batch's episodes and before
  committing their jobs (``memory_store.pipeline``).
- ``turn_after_action``: an API process, after an account action committed and before the turn's
  checkpoint and answer (``nodes.respond_or_escalate``).
"""

from __future__ import annotations

import os

#: The environment variable naming the failpoint to die at.
FAILPOINT_ENV = "SUPPORT_AGENT_FAILPOINT"
#: The exit status of a process that died at its failpoint.
EXIT_STATUS = 70


def failpoint(name: str) -> None:
    """Exit the process now (status :data:`EXIT_STATUS`) if ``name`` is the configured failpoint."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(EXIT_STATUS)
