"""The bare-SDK floor: the smallest Restate workflow that does the gateway's job.

``run`` resolves a durable promise; each ``on_notify`` awaits it and POSTs it to a webhook in
a journaled step, through one pooled HTTP client, served as the gateway's endpoint is
(``GATEWAY_ENDPOINT_SERVER``). No configuration, routing, templates, signing, receipts or
agent: what the gateway's figures are divided by.

The client's pool holds 512 connections, as the issue's ``baseline.py`` has it, unless
``BENCH_FLOOR_POOL`` says otherwise. That pool is what makes the floor bimodal under a burst:
httpcore looks at every pooled connection on each request, so once a backlog opens hundreds of
connections each POST costs more, the backlog grows, and the process's CPU per delivery
doubles (py-spy: the pool's bookkeeping went from 18% to 39% of the process between a good
and a bad run). With 16 connections it stays in the good mode (the README's Benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx
import restate
from restate import Workflow, WorkflowContext, WorkflowSharedContext

from gateway.local.endpoint import serve_endpoint

workflow = Workflow("BenchBaseline")
_client: httpx.AsyncClient | None = None
#: connections of the client's pool (see the module's docstring)
POOL = int(os.environ.get("BENCH_FLOOR_POOL") or 512)


def client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL),
            timeout=httpx.Timeout(30.0, pool=60.0))
    return _client


@workflow.main()
async def run(ctx: WorkflowContext, prompt: str) -> str:
    async def answer() -> dict[str, Any]:
        return {"text": f"answer to {prompt}", "completed_at": time.time()}

    result = await ctx.run_typed("agent", answer)
    await ctx.promise("result").resolve(result)
    return str(result["text"])


@workflow.handler()
async def on_notify(ctx: WorkflowSharedContext, target: str) -> str:
    result = await ctx.promise("result").value()

    async def post() -> int:
        response = await client().post(target, json=result)
        response.raise_for_status()
        return response.status_code

    await ctx.run_typed("post", post)
    return "sent"


#: for ``granian --workers N bench.baseline_app:app`` (the second-core measurement)
app = restate.app(services=[workflow])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    protocol = "request_response" if os.environ.get("BENCH_HTTP11") == "1" else None
    app = restate.app(services=[workflow], protocol=protocol)
    asyncio.run(serve_endpoint(app, "127.0.0.1", args.port, asyncio.Event()))


if __name__ == "__main__":
    main()
