"""The API's operations: path, method, scope, models and errors of each, from which the
routes and the OpenAPI document are both made."""

from __future__ import annotations

from gateway.api._inbound import receive_hook
from gateway.api._models import (
    SUBSCRIPTION_ID_PATTERN,
    TASK_ID_PATTERN,
    Health,
    Readiness,
    SubscriptionCreate,
    SubscriptionOut,
    TaskCreate,
    TaskCreated,
)
from gateway.api._openapi import Header, Operation, PathParam
from gateway.api._probes import healthz, readyz
from gateway.api._redrive import redrive_subscription
from gateway.api._tasks import add_subscription, cancel_subscription, create_task, get_task
from gateway.api.task_list import TaskList, list_tasks_endpoint
from gateway.core import DeliveryReceipt, TaskStatus

__all__ = ["OPERATIONS"]

_HOOK_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


_TASK = PathParam("task_id", TASK_ID_PATTERN, "The task id (the workflow key).")

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/tasks", "createTask", "Start a task", "submit",
              {201: ("Started.", TaskCreated), 200: ("Started before: the same task.",
                                                     TaskCreated)},
              errors=(400, 401, 403, 408, 413, 422), request=TaskCreate,
              headers=(Header("Idempotency-Key", "The same key (per API key) is the same "
                              "task: a repeat answers 200 with it instead of starting another."),),
              response_headers={201: ("Location",), 200: ("Location",)},
              description="Idempotent: the task id, else the Idempotency-Key header, names the "
                          "task; a task runs once per id. Ids starting with hook- belong to "
                          "inbound hooks (422). A key of a tenant names its tenant's tasks, "
                          "which other keys cannot see (404).",
              endpoint=create_task),
    Operation("get", "/v1/tasks", "listTasks", "Recent tasks, newest first", "read",
              {200: ("A page of tasks.", TaskList)}, errors=(401, 403, 422),
              description="Query: state, agent, channel, label=KEY=VALUE (repeatable), limit "
                          "(1-100, default 25), cursor (the previous page's next_cursor).",
              endpoint=list_tasks_endpoint),
    Operation("get", "/v1/tasks/{task_id}", "getTask", "A task's state, result and deliveries",
              "read", {200: ("The task.", TaskStatus)}, errors=(401, 403, 404),
              params=(_TASK,),
              endpoint=get_task),
    Operation("post", "/v1/tasks/{task_id}/subscriptions", "addSubscription",
              "Subscribe to a task, at any time", "subscribe",
              {201: ("Subscribed (the same subscriber again is the same subscription).",
                     SubscriptionOut)},
              errors=(400, 401, 403, 404, 408, 413, 422), request=SubscriptionCreate,
              params=(_TASK,),
              description="After the task finished, the outcome is delivered at once.",
              endpoint=add_subscription),
    Operation("delete", "/v1/tasks/{task_id}/subscriptions/{subscription_id}",
              "cancelSubscription", "Cancel a subscription still waiting", "subscribe",
              {200: ("Cancelled: the receipt.", DeliveryReceipt)},
              errors=(401, 403, 404, 409),
              params=(_TASK, PathParam("subscription_id", SUBSCRIPTION_ID_PATTERN,
                                       "The subscription id (s_...).")),
              endpoint=cancel_subscription),
    Operation("post", "/v1/tasks/{task_id}/subscriptions/{subscription_id}/redrive",
              "redriveSubscription", "Deliver a failed subscription again", "subscribe",
              {202: ("Redriving: the receipt, retrying.", DeliveryReceipt)},
              errors=(401, 403, 404, 409),
              params=(_TASK, PathParam("subscription_id", SUBSCRIPTION_ID_PATTERN,
                                       "The subscription id (s_...).")),
              description="A new durable attempt chain of a failed subscription, sending the "
                          "same message id (webhook-id), so a receiver that drops duplicates "
                          "sees one message; its attempts follow the failed ones in the "
                          "receipt. A delivered, waiting or cancelled subscription: 409.",
              endpoint=redrive_subscription),
    Operation("post", "/v1/hooks/{source}", "receiveHook", "Inbound webhook of a source", None,
              {201: ("A task was started.", TaskCreated),
               200: ("A retry of a delivery seen before: the same task.", TaskCreated)},
              errors=(400, 401, 404, 408, 413, 422),
              params=(PathParam("source", _HOOK_NAME, "A source named in hooks:."),),
              headers=(Header("webhook-id", "Standard Webhooks: the delivery id."),
                       Header("webhook-timestamp", "Standard Webhooks: unix seconds."),
                       Header("webhook-signature", "Standard Webhooks: v1,<base64> ...",
                              max_length=4096)),
              response_headers={201: ("Location",), 200: ("Location",)},
              description="Verified by the source's scheme (Standard Webhooks, or its HMAC "
                          "header); a signed timestamp more than 5 minutes off is refused; "
                          "what the signature covers names the task (the delivery id when "
                          "signed or timestamped, else the body's digest), so neither a retry "
                          "nor a replay runs anything twice.",
              endpoint=receive_hook),
    Operation("get", "/healthz", "healthz", "The process is up", None,
              {200: ("Up.", Health)},
              endpoint=healthz),
    Operation("get", "/readyz", "readyz", "Restate is reachable",
              None, {200: ("Ready.", Readiness), 503: ("Not ready, and why.", Readiness)},
              endpoint=readyz),
)
