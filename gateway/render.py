"""Rendering: turns a task's outcome into the message one channel sends.

Placeholder: plain text only. The template layer (sandboxed Jinja2 per channel) replaces
the internals of :class:`Renderer` while keeping :meth:`Renderer.render`'s signature.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from gateway.channels import ChannelInstance, Message, MessageKind
from gateway.models import Subscription, Target

__all__ = ["Renderer", "TaskView"]


class TaskView(BaseModel):
    """What a template may see of a task."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    agent: str
    prompt: str
    labels: dict[str, str] = Field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    completed_at: float | None = None
    links: dict[str, str] = Field(default_factory=dict)


class Renderer:
    """Renders messages; built once per process from the configured templates."""

    def render(
        self,
        *,
        kind: MessageKind,
        task: TaskView,
        subscription: Subscription,
        target: Target,
        channel: ChannelInstance,
        message_id: str,
    ) -> Message:
        if kind == "result":
            subject = f"Task {task.task_id} finished"
            text = task.output or ""
        elif kind == "failure":
            subject = f"Task {task.task_id} failed"
            text = f"The agent could not finish: {task.error}"
        else:
            subject = f"Task {task.task_id} is still running"
            text = "The result is not there yet; you will get it when it is."
        data = {
            "id": message_id,
            "type": f"task.{kind}",
            "task_id": task.task_id,
            "subscription_id": subscription.id,
            "agent": task.agent,
            "labels": task.labels,
            "output": task.output,
            "error": task.error,
            "completed_at": task.completed_at,
        }
        json.dumps(data)  # fail here, not in a channel, if something is not serialisable
        return Message(
            id=message_id,
            task_id=task.task_id,
            subscription_id=subscription.id or "",
            kind=kind,
            target=target.target,
            subject=subject,
            text=text,
            data=data,
        )
