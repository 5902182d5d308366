"""``python -m bench``: run the benchmarks, print the figures, write results/latest.{json,md}."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.harness import SERVER_SETTINGS, machine

RESULTS = Path(__file__).resolve().parent / "results"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: float(r["deliveries_per_s"]))
    return ordered[len(ordered) // 2]


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    settings = " ".join(f"{k}={v}" for k, v in doc.get("server_settings", {}).items())
    lines = [f"Measured {doc['date']} on {m['cpus']} CPUs ({m['cpu_model']}), Python "
             f"{m['python']}, {m['restate_server']}"
             + (f", server settings: {settings}" if settings else "") + ".", ""]
    if "throughput" in doc:
        t = doc["throughput"]
        g, b = t["gateway"], t["baseline"]
        spread = {kind: sorted(r["deliveries_per_s"] for r in t.get("rounds", {}).get(kind, []))
                  for kind in ("gateway", "baseline")}
        if all(spread.values()):
            lines += [f"Throughput: the median of {len(spread['gateway'])} alternating rounds "
                      f"(deliveries/s, gateway {spread['gateway']}, bare SDK "
                      f"{spread['baseline']}).", ""]
        lines += ["| throughput (tasks x subscriptions at once) | gateway | bare SDK | ratio |",
                  "|---|---|---|---|"]
        for key, label in (("deliveries_per_s", "deliveries/s"),
                           ("cpu_ms_per_delivery", "CPU ms per delivery"),
                           ("server_cpu_ms_per_delivery", "of which restate-server"),
                           ("service_cpu_ms_per_delivery", "of which the Python service"),
                           ("wall_s", "wall time, s"), ("lost", "lost"),
                           ("duplicates", "duplicates"), ("p99_ms", "p99 delay, ms")):
            ratio = _ratio(g[key], b[key]) if key in ("deliveries_per_s",
                                                      "cpu_ms_per_delivery") else ""
            lines.append(f"| {label} ({g['tasks']} x {g['subscriptions']}) | {g[key]} | "
                         f"{b[key]} | {ratio if ratio is not None else ''} |")
        lines.append("")
    if "latency" in doc:
        lt = doc["latency"]
        lines += ["| latency, promise resolved to receiver | p50 | p95 | p99 | delivered |",
                  "|---|---|---|---|---|",
                  f"| {lt['offered_tasks_per_s']:g} tasks/s x {lt['subscriptions']} for "
                  f"{lt['seconds']:g} s | {lt['p50_ms']} ms | {lt['p95_ms']} ms | "
                  f"{lt['p99_ms']} ms | {lt['delivered']}/{lt['deliveries']} |", ""]
    if "waiting" in doc:
        w = doc["waiting"]
        lines += ["| waiting subscribers | RSS idle | RSS waiting | RSS after | delivered | "
                  "time to deliver all |", "|---|---|---|---|---|---|",
                  f"| {w['subscribers']} on {w['tasks']} tasks | {w['rss_idle_mb']} MB | "
                  f"{w['rss_waiting_mb']} MB | {w['rss_after_mb']} MB | "
                  f"{w['delivered']}/{w['subscribers']} | {w['deliver_all_s']} s |", ""]
    if "fanout" in doc:
        lines += ["| fan-out, 1 task x N | delivered | wall, s | CPU ms per delivery |",
                  "|---|---|---|---|"]
        for f in doc["fanout"]:
            lines.append(f"| N = {f['subscribers']} | {f['delivered']} | {f['wall_s']} | "
                         f"{f['cpu_ms_per_delivery']} |")
        lines.append("")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                           "server_settings": SERVER_SETTINGS}
    chosen = set(args.scenarios.split(","))
    if "throughput" in chosen:
        # rounds alternate gateway and baseline, so drifting load on the machine hits both;
        # the round with the median deliveries/s of each is reported, every round is kept
        rounds: dict[str, list[dict[str, Any]]] = {"gateway": [], "baseline": []}
        for kind in rounds:  # warm-up, not reported: the first run on a quiet machine is slower
            await scenarios.throughput(kind, max(1, args.tasks // 5), args.subs)
        for _ in range(args.rounds):
            for kind in rounds:
                figures = await scenarios.throughput(kind, args.tasks, args.subs)
                print(json.dumps(figures), flush=True)
                rounds[kind].append(figures)
        gateway, baseline = (_median_round(rounds[kind]) for kind in ("gateway", "baseline"))
        doc["throughput"] = {
            "gateway": gateway, "baseline": baseline, "rounds": rounds,
            "ratio_deliveries_per_s": _ratio(gateway["deliveries_per_s"],
                                             baseline["deliveries_per_s"]),
            "ratio_cpu_ms_per_delivery": _ratio(gateway["cpu_ms_per_delivery"],
                                                baseline["cpu_ms_per_delivery"]),
        }
    if "latency" in chosen:
        doc["latency"] = await scenarios.latency(args.rate, args.seconds)
        print(json.dumps(doc["latency"]), flush=True)
    if "waiting" in chosen:
        doc["waiting"] = await scenarios.waiting(args.waiting_tasks, args.waiting_per_task)
        print(json.dumps(doc["waiting"]), flush=True)
    if "fanout" in chosen:
        doc["fanout"] = await scenarios.fanout([10, 100, 1000])
        print(json.dumps(doc["fanout"]), flush=True)
    if "console" in chosen:  # not in the default set: python -m bench --scenarios console
        from bench.console import console_first_page

        doc["console"] = await console_first_page()
        print(json.dumps(doc["console"]), flush=True)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", default="throughput,latency,waiting,fanout")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--subs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds per system (the median is reported)")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--waiting-tasks", type=int, default=1000)
    parser.add_argument("--waiting-per-task", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    doc = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "latest.md").write_text(table(doc) + "\n")
    print(table(doc))


if __name__ == "__main__":
    main()
