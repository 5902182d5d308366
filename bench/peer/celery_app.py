"""Notify-when-ready the way a team builds it without a durable-execution engine.

Redis is broker and store (append-only file, fsynced every second: up to a second of loss on a
crash); Celery workers run a threads pool, acknowledge late and retry with backoff. ``run_task``
stores the result and fans out to the subscribers registered so far in one transaction;
``subscribe`` registers a subscriber and, when the result exists already, enqueues its delivery
at once; a ``sent:`` marker keeps the two paths from delivering twice. Runs in the peer's own
environment (celery, redis, httpx), never in the gateway's.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import redis
from celery import Celery

BROKER = os.environ["PEER_REDIS_URL"]
app = Celery("peer", broker=BROKER)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                worker_prefetch_multiplier=8, task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True)
store = redis.Redis.from_url(BROKER)
http = httpx.Client(limits=httpx.Limits(max_connections=64), timeout=30)


@app.task(autoretry_for=(Exception,), retry_backoff=True, max_retries=10)
def run_task(task_id: str, prompt: str) -> None:
    result = json.dumps({"text": f"answer to {prompt}", "completed_at": time.time()})
    pipe = store.pipeline(transaction=True)
    pipe.set(f"result:{task_id}", result, nx=True)
    pipe.smembers(f"subs:{task_id}")
    _, targets = pipe.execute()
    for target in targets:
        deliver.delay(task_id, target.decode())


@app.task(autoretry_for=(Exception,), retry_backoff=True, max_retries=10)
def deliver(task_id: str, target: str) -> str:
    if not store.set(f"sent:{task_id}:{target}", 1, nx=True):
        return "duplicate"
    try:
        result = json.loads(store.get(f"result:{task_id}") or b"{}")
        http.post(target, json=result, headers={"webhook-id": f"{task_id}:{target}"}
                  ).raise_for_status()
    except Exception:
        store.delete(f"sent:{task_id}:{target}")
        raise
    return "sent"


def subscribe(task_id: str, target: str) -> None:
    pipe = store.pipeline(transaction=True)
    pipe.sadd(f"subs:{task_id}", target)
    pipe.get(f"result:{task_id}")
    _, result = pipe.execute()
    if result is not None:
        deliver.delay(task_id, target)
