"""Account actions' shared machinery: the idempotent ledger and the retention offers ledger.

The actions themselves belong to the verticals (``verticals.retail.actions``,
``verticals.bank.actions``); every one runs through :func:`actions.ledger.idempotent`.
"""
