"""``status``: a task's state, its result or error, and every delivery receipt (the
receipts object's, see :mod:`._receipts`).
"""

from __future__ import annotations

from datetime import timedelta

from restate import (
    WorkflowSharedContext,
)

from gateway.core import (
    Task,
    TaskResult,
    TaskState,
    TaskStatus,
)
from gateway.durable._receipts import list_receipts
from gateway.durable._services import workflow
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
    asked = ctx.request().headers.get(_trace.TRACEPARENT)  # the read joins the request's trace
    listed = await ctx.object_call(list_receipts, key=ctx.key(), arg=None, headers={
        _trace.TRACEPARENT: asked or _trace.task_traceparent(ctx.key(), "status")})
    if state == TaskState.UNKNOWN.value and listed.root:  # subscribers before the task's run
        state = TaskState.NOT_STARTED.value
    out = TaskStatus(task_id=ctx.key(), state=TaskState(state), error=error,
                     deliveries=listed.root)
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
