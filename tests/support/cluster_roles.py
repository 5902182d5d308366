"""Who does what in a running Restate cluster, asked of the cluster itself.

restate-server 1.7.12's admin SQL endpoint (``POST /query``) has the partitions' own tables
(``sys_invocation`` and friends) but no cluster tables (nodes, partition leadership, metadata
leadership: those are ``restatectl``'s gRPC queries, and ``restatectl`` is not shipped here).
Each node reports its roles on its node port instead: ``/health`` names the node
(``"node_id": "N2:1"``) and ``/metrics`` has ``restate_num_active_partition_leaders`` (the
partitions this node leads now) and ``restate_metadata_server_replicated_leader_id`` (the plain
id of the metadata (Raft) leader as this node sees it). Invocation states come from the admin
SQL endpoint.
"""

from __future__ import annotations

import re
from collections import Counter

import httpx

from gateway.local.engine import LocalEngine

__all__ = ["NOT_FINISHED", "invocation_states", "metadata_leader", "node_id", "partition_leaders"]

#: states of an invocation that has not finished (Restate's ``sys_invocation.status``)
NOT_FINISHED = {"pending", "scheduled", "ready", "running", "backing-off", "suspended"}


def node_url(node: LocalEngine) -> str:
    return f"http://127.0.0.1:{node.node_port}"


def node_id(node: LocalEngine) -> int:
    """The plain node id (``N2:1`` is 2) a node reports on its node port."""
    health = httpx.get(f"{node_url(node)}/health", timeout=5).json()
    match = re.fullmatch(r"N(\d+):\d+", str(health["node_id"]))
    assert match, f"unexpected node id {health['node_id']!r}"
    return int(match.group(1))


def _gauge(node: LocalEngine, name: str) -> float | None:
    text = httpx.get(f"{node_url(node)}/metrics", timeout=5).text
    match = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def partition_leaders(nodes: list[LocalEngine]) -> dict[int, int]:
    """Plain node id -> partitions it leads, for every node that answers."""
    leaders: dict[int, int] = {}
    for node in nodes:
        try:
            count = _gauge(node, "restate_num_active_partition_leaders")
            leaders[node_id(node)] = int(count or 0)
        except httpx.HTTPError:
            continue  # a dead node leads nothing
    return leaders


def metadata_leader(nodes: list[LocalEngine]) -> int | None:
    """The plain id of the metadata leader, when the nodes that answer agree on one."""
    seen: set[int] = set()
    for node in nodes:
        try:
            value = _gauge(node, "restate_metadata_server_replicated_leader_id")
        except httpx.HTTPError:
            continue
        if value is not None and value > 0:
            seen.add(int(value))
    return seen.pop() if len(seen) == 1 else None


def invocation_states(admin_url: str, handler: str, key_prefix: str) -> Counter[str]:
    """How many invocations of ``AsyncNotificationsAgent/<handler>`` with keys starting with
    ``key_prefix`` are in each state (``sys_invocation.status``), from the admin SQL endpoint."""
    assert re.fullmatch(r"[\w-]+", handler + key_prefix), "only ids go into the query"
    query = ("SELECT status, count(*) AS n FROM sys_invocation WHERE target_service_name = "
             f"'AsyncNotificationsAgent' AND target_handler_name = '{handler}' AND "
             f"target_service_key LIKE '{key_prefix}%' GROUP BY status")
    r = httpx.post(f"{admin_url}/query", json={"query": query},
                   headers={"accept": "application/json"}, timeout=10)
    r.raise_for_status()
    return Counter({row["status"]: int(row["n"]) for row in r.json()["rows"]})
