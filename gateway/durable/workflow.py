"""The Restate workflow ``AsyncNotificationsAgent`` and the receipts object ``TaskDeliveries``.

``run`` (once per task id) journals the task, sends one ``on_notify`` per subscription, runs
the agent durably and resolves the durable promise ``result`` (rejects it on failure).
``on_notify`` (shared, any number, any time) awaits the promise - suspended, at no cost -
renders the message and delivers it: every attempt is a journaled step, waits between
attempts are durable timers, and a channel that gives up hands over to the next fallback.
Every receipt of a subscription goes to one store, the virtual object ``TaskDeliveries``
keyed by task id, because shared workflow handlers cannot write workflow state.

Where each part lives:

* :mod:`._services` - the two Restate services, their invocation retry policy, shared names
* :mod:`._task_run` - ``run``
* :mod:`._notify` - ``on_notify``; :mod:`._subscribe` - ``subscribe``, ``add_subscribers``
* :mod:`._delivery` - waiting for the outcome, the channel and its fallbacks
* :mod:`._attempts` - one journaled delivery attempt
* :mod:`._receipts` - the receipts object and recording a receipt
* :mod:`._redrive` - ``redrive``: a failed subscription's new attempt chain
* :mod:`._cancel` - ``cancel``: one subscription, in one durable step
* :mod:`._status` - ``status``

Importing this module registers every handler on the two services.
"""

from __future__ import annotations

# each module registers its handlers when imported
from gateway.durable import (  # noqa: F401  # imported for their handlers
    _cancel,
    _notify,
    _receipts,
    _redrive,
    _status,
    _subscribe,
    _task_run,
)
from gateway.durable._services import RESULT_PROMISE, deliveries, workflow

__all__ = ["RESULT_PROMISE", "deliveries", "workflow"]
