"""Drive the Celery peer: ``tasks`` x ``subs`` submitted at once; prints one JSON line.

Run with the peer's own Python (``.tools/celery-peer/bin/python -m bench.peer.drive``) by
:func:`bench.scenarios.celery_peer`, which starts redis-server, the worker and the sink and
measures CPU (redis-server + the worker and its children)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.peer import celery_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--subs", type=int, required=True)
    parser.add_argument("--sink", required=True)
    args = parser.parse_args()
    for _ in range(100):  # the broker answers
        try:
            celery_app.store.ping()
            break
        except Exception:  # noqa: BLE001 - not up yet, whatever the client raises
            time.sleep(0.1)
    print("ready", flush=True)
    sys.stdin.readline()  # the go, once the clock runs (the imports above are not counted)
    run = time.time_ns()
    for i in range(args.tasks):
        key = f"peer-{run}-{i}"
        celery_app.run_task.delay(key, f"task {i}")
        for c in range(args.subs):
            celery_app.subscribe(key, f"{args.sink}/h/{i}/{c}")
    print(json.dumps({"submitted": args.tasks * args.subs}), flush=True)


if __name__ == "__main__":
    main()
