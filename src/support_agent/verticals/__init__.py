"""Lines of business behind one protocol (``verticals.protocol.Vertical``), and their registry.

Built in: ``retail`` (an online store: orders, returns, exchanges; tau2-bench retail) and
``bank`` (Rho-Bank: cards, transactions, disputes, retention offers; tau2-bench banking). A tenant
names its vertical in ``tenant.yaml`` (``vertical.name``): a built-in name, or the import path
``package.module:Class`` of a vertical of one's own, which needs no change to this package.
"""

from __future__ import annotations

import importlib

from pydantic import ValidationError

from support_agent.errors import InvalidRequestError
from support_agent.tenants import TenantConfig
from support_agent.verticals.protocol import Vertical

#: Built-in verticals by name (imported when a tenant uses them).
BUILT_IN = {
    "retail": "support_agent.verticals.retail:RetailVertical",
    "bank": "support_agent.verticals.bank:BankVertical",
}


def vertical_class(name: str) -> type[Vertical]:
    """The vertical class a tenant names (built-in name or ``package.module:Class``).

    Raises:
        InvalidRequestError: no such vertical, or it is not a ``Vertical``.
    """
    path = BUILT_IN.get(name, name)
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidRequestError(
            f"unknown vertical {name!r}: expected one of {sorted(BUILT_IN)} or a"
            " 'package.module:Class' path"
        )
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidRequestError(f"vertical {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Vertical)):
        raise InvalidRequestError(f"vertical {name!r} is not a Vertical")
    return found


def load_vertical(config: TenantConfig) -> Vertical:
    """The tenant's vertical, with its settings validated.

    Raises:
        InvalidRequestError: unknown vertical, or its settings are invalid.
    """
    cls = vertical_class(config.vertical.name)
    try:
        settings = cls.settings_model.model_validate(config.vertical.settings)
    except ValidationError as exc:
        raise InvalidRequestError(
            f"invalid vertical settings in {config.tenant_id}/tenant.yaml: {exc}"
        ) from exc
    return cls(settings, config)
