"""Who owns a task: the API's task ids and the Restate workflow keys they name.

A task id names a Restate workflow, and Restate has one key space. The API keeps its owners
apart by construction, not by a lookup:

- inbound hooks own ``hook-<source>-...``: the API refuses such an id (422), so no caller can
  start, and so take over, the task of a delivery that has not arrived yet. A source with a
  ``tenant`` starts its tasks in that tenant's namespace, where its keys read them;
- a key without a tenant names the workflow by the id as given (the tasks of no tenant,
  which include the hooks' tasks);
- a tenant's keys name ``<tenant>~<id>``. An API task id cannot hold ``~``, so neither
  another tenant's key nor a tenant-less key can name that workflow, and two tenants may
  both use ``build-1``. Each caller is shown its own id, never the prefix.

There is no key that sees every tenant: a tenant-less key sees only the tasks of no tenant
(operators look further through Restate's admin API, which stays private). Another owner's
task is answered like a missing one (404), so ids do not leak.
"""

from __future__ import annotations

from gateway.api.auth import Caller
from gateway.core import TENANT_SEPARATOR

__all__ = [
    "HOOK_PREFIX",
    "TENANT_SEPARATOR",
    "caller_task_id",
    "reserved",
    "tenant_key",
    "workflow_key",
]

#: the task ids of inbound hooks (see :func:`gateway.config.hooks.hook_task_id`)
HOOK_PREFIX = "hook-"


def reserved(task_id: str) -> str | None:
    """Why an API caller may not choose ``task_id`` (None: it may)."""
    if task_id.startswith(HOOK_PREFIX):
        return (f"task ids starting with {HOOK_PREFIX!r} belong to inbound hooks; choose "
                "another id")
    return None


def tenant_key(tenant: str | None, task_id: str) -> str:
    """The workflow key of ``task_id`` in ``tenant``'s namespace (None: of no tenant)."""
    return task_id if tenant is None else f"{tenant}{TENANT_SEPARATOR}{task_id}"


def workflow_key(caller: Caller, task_id: str) -> str:
    """The workflow a caller's ``task_id`` names: in its tenant's namespace, if it has one."""
    return tenant_key(caller.tenant, task_id)


def caller_task_id(caller: Caller, key: str) -> str:
    """The id the caller knows a workflow key by (the inverse of :func:`workflow_key`)."""
    if caller.tenant is None:
        return key
    return key.removeprefix(f"{caller.tenant}{TENANT_SEPARATOR}")
