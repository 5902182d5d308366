"""``status``: a task's state, its result or error, and every delivery receipt, merged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from restate import (
    WorkflowSharedContext,
)

from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    Task,
    TaskResult,
    TaskState,
    TaskStatus,
)
from gateway.durable._receipts import list_receipts
from gateway.durable._services import (
    FINAL_RECEIPT_PROMISE,
    workflow,
)
from gateway.observability import trace as _trace


# suspended while it waits for the receipts, so it holds none of the server's invocation
# slots (bounded: see gateway.local.engine) that the receipts' own handler may need
@workflow.handler(inactivity_timeout=timedelta(seconds=1))
async def status(ctx: WorkflowSharedContext) -> TaskStatus:
    """The task's state, its result or error, and every delivery receipt."""
    task_raw = await ctx.get("task", type_hint=dict)
    state = await ctx.get("state", type_hint=str) or TaskState.UNKNOWN.value
    result_raw = await ctx.get("result", type_hint=dict)
    error = await ctx.get("error", type_hint=str)
    completed_at = await ctx.get("completed_at", type_hint=float)
    waiting: list[dict[str, Any]] = await ctx.get("subscriptions", type_hint=list) or []
    asked = ctx.request().headers.get(_trace.TRACEPARENT)  # the read joins the request's trace
    listed = await ctx.object_call(list_receipts, key=ctx.key(), arg=None, headers={
        _trace.TRACEPARENT: asked or _trace.task_traceparent(ctx.key(), "status")})
    receipts = [r.model_dump(mode="json") for r in listed.root]
    recorded = {r["subscription_id"] for r in receipts}
    merged = [r for r in waiting if r["subscription_id"] not in recorded] + receipts
    # a delivery's final receipt is its FINAL_RECEIPT_PROMISE (see on_notify): asked at once
    # for each subscription not final here
    peeks = {i: ctx.promise(FINAL_RECEIPT_PROMISE + r["subscription_id"], type_hint=dict).peek()
             for i, r in enumerate(merged) if not DeliveryState(r["state"]).final}
    for i, peek in peeks.items():
        final = await peek
        # created when the subscriber was, like the receipts object keeps it; a newer
        # receipt there is a redrive's (see gateway.durable._redrive)
        if final and final["updated_at"] >= merged[i]["updated_at"]:
            merged[i] = {**final, "created_at": merged[i]["created_at"]}
    merged.sort(key=lambda r: (r["created_at"], r["subscription_id"]))
    if state == TaskState.UNKNOWN.value and merged:  # subscribers before the task's run
        state = TaskState.NOT_STARTED.value
    out = TaskStatus(task_id=ctx.key(), state=TaskState(state), error=error,
                     deliveries=[DeliveryReceipt.model_validate(r) for r in merged])
    if task_raw:
        task = Task.model_validate(task_raw)
        out = out.model_copy(update={"agent": task.agent, "prompt": task.prompt,
                                     "labels": task.labels, "submitted_at": task.submitted_at})
    if result_raw:
        result = TaskResult.model_validate(result_raw)
        out = out.model_copy(update={"output": result.output, "completed_at": result.completed_at})
    elif completed_at:
        out = out.model_copy(update={"completed_at": completed_at})
    return out
