"""A real 3-node Restate cluster on loopback: replicated log and metadata, one node provisions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from gateway.local import LocalEngine, free_port
from gateway.local.engine import wait_healthy
from tests.conftest import ALWAYS_REPLAY, engine_env


class LocalCluster:
    def __init__(self, base: Path, size: int = 3, partitions: int | None = None,
                 roles: dict[int, list[str]] | None = None) -> None:
        """``roles``: node number (from 1) -> its roles (default: every role)."""
        node_ports = [free_port() for _ in range(size)]
        sized = {} if partitions is None else {
            "RESTATE_BOOTSTRAP_NUM_PARTITIONS": str(partitions),
            "RESTATE_DEFAULT_NUM_PARTITIONS": str(partitions)}
        addresses = json.dumps([f"http://127.0.0.1:{p}" for p in node_ports])
        self.nodes = []
        for i, node_port in enumerate(node_ports, start=1):
            env = {
                **engine_env(ALWAYS_REPLAY),  # GATEWAY_TEST_ALWAYS_REPLAY=1: replay at every step
                **sized,
                "RESTATE_CLUSTER_NAME": "gateway-test-cluster",
                "RESTATE_NODE_NAME": f"node-{i}",
                "RESTATE_DEFAULT_REPLICATION": "2",
                "RESTATE_METADATA_CLIENT__ADDRESSES": addresses,
                "RESTATE_AUTO_PROVISION": "true" if i == 1 else "false",
            }
            if roles and i in roles:
                env["RESTATE_ROLES"] = "[" + ",".join(roles[i]) + "]"
            self.nodes.append(LocalEngine(base_dir=base / f"node-{i}", ingress_port=free_port(),
                                          admin_port=free_port(), node_port=node_port, env=env,
                                          startup_timeout=120))

    def start(self) -> LocalCluster:
        # every node must be up before the cluster is healthy: start them, then wait for each
        try:
            for node in self.nodes:
                node.start_process()
            for node in self.nodes:
                node.wait_ready()
            self.wait_provisioned()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_provisioned(self, timeout: float = 120) -> None:
        """Until the first node's ingress accepts a request for a (missing) service."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.nodes[0].admin_url}/deployments", timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the cluster did not become ready:" + self.nodes[0].log_tail(40))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


__all__ = ["LocalCluster", "wait_healthy"]
