"""Task ids as their owners know them: a tenant's task is the Restate workflow
``<tenant>~<id>`` (see :mod:`gateway.api._tenancy`); its subscribers are told ``<id>``."""

from __future__ import annotations

__all__ = ["TENANT_SEPARATOR", "shown_task_id"]

#: between a tenant and its task id in a workflow key; never part of an API task id or a
#: tenant's name
TENANT_SEPARATOR = "~"


def shown_task_id(key: str) -> str:
    """The task id its owner knows a workflow key by (the key without a tenant prefix)."""
    _, separator, task_id = key.partition(TENANT_SEPARATOR)
    return task_id if separator else key
