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
from bench.peer_run import celery_round, peer_missing
from bench.profile import summarize
from gateway.local.endpoint import endpoint_server

RESULTS = Path(__file__).resolve().parent / "results"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: float(r["deliveries_per_s"]))
    return ordered[len(ordered) // 2]


_LABELS = {"gateway": "gateway, own subscriptions", "gateway_seed": "gateway, seed path",
           "baseline": "bare SDK (floor, 512-connection client)",
           "baseline16": "bare SDK (floor, 16-connection client)", "celery": "Celery + Redis peer"}
_ROWS = (("deliveries_per_s", "deliveries/s"), ("cpu_ms_per_delivery", "CPU ms per delivery"),
         ("server_cpu_ms_per_delivery", "of which restate-server"),
         ("service_cpu_ms_per_delivery", "of which the Python service"),
         ("wall_s", "wall time, s"), ("lost", "lost"), ("duplicates", "duplicates"),
         ("p99_ms", "p99 delay, ms"))


def _throughput_table(t: dict[str, Any]) -> list[str]:
    names = [n for n in _LABELS if n in t]
    first = t[names[0]]
    spread = "; ".join(f"{_LABELS[n]} {sorted(r['deliveries_per_s'] for r in t['rounds'][n])}"
                       for n in names)
    lines = [f"Throughput, {first['tasks']} tasks x {first['subscriptions']} subscribers at "
             f"once: each system's median of {len(t['rounds'][names[0]])} alternating rounds "
             f"(deliveries/s of the rounds: {spread}).", "",
             "| | " + " | ".join(_LABELS[n] for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, label in _ROWS:
        lines.append(f"| {label} | " + " | ".join(str(t[n].get(key, "")) for n in names)
                     + " |")
    for floor, which in (("baseline", "floor's (512)"), ("baseline16", "floor's (16)")):
        if floor not in t:
            continue
        ratios = t.get(_RATIOS[floor], {})
        for key, label in (("deliveries_per_s", f"throughput / {which}"),
                           ("cpu_ms_per_delivery", f"CPU per delivery / {which}")):
            lines.append(f"| {label} | " + " | ".join(
                "1" if n == floor else str(ratios.get(n, {}).get(key, "")) for n in names)
                + " |")
    lines.append("")
    for name, prof in t.get("profile", {}).items():
        parts = ", ".join(f"{k} {v}%" for k, v in prof.get("parts_percent", {}).items())
        lines += [f"py-spy, {_LABELS[name]} (service process, {prof.get('samples')} samples): "
                  f"{parts}.", ""]
    return lines


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    settings = " ".join(f"{k}={v}" for k, v in doc.get("server_settings", {}).items())
    lines = [f"Measured {doc['date']} on {m['cpus']} CPUs ({m['cpu_model']}), Python "
             f"{m['python']}, {m['restate_server']}, endpoint served by "
             f"{doc.get('endpoint_server', 'hypercorn')}"
             + (f", server settings: {settings}" if settings else "")
             + (f"; the whole run took {doc['bench_minutes']} min" if "bench_minutes" in doc
                else "") + ".", ""]
    if doc.get("note"):
        lines += [f"**{doc['note']}**", ""]
    if "throughput" in doc:
        lines += _throughput_table(doc["throughput"])
    if "workers" in doc:
        lines += ["| the floor on N granian worker processes, one port | deliveries/s | "
                  "CPU ms per delivery | of which the service |", "|---|---|---|---|"]
        for n, f in doc["workers"]["medians"].items():
            lines.append(f"| N = {n} (median of {len(doc['workers']['rounds'][n])}) | "
                         f"{f['deliveries_per_s']} | {f['cpu_ms_per_delivery']} | "
                         f"{f['service_cpu_ms_per_delivery']} |")
        lines.append("")
    if "latency" in doc:
        lt = doc["latency"]
        lines += ["| latency, promise resolved to receiver | p50 | p95 | p99 | delivered |",
                  "|---|---|---|---|---|",
                  f"| {lt['offered_tasks_per_s'] * lt['subscriptions']:g} deliveries/s "
                  f"({lt['offered_tasks_per_s']:g} tasks/s x {lt['subscriptions']}) for "
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
        lines += ["| fan-out, 1 task x N | delivered | wall, s | CPU ms per delivery | "
                  "every receipt final, s (asked once a second) |", "|---|---|---|---|---|"]
        for f in doc["fanout"]:
            lines.append(f"| N = {f['subscribers']} | {f['delivered']} | {f['wall_s']} | "
                         f"{f['cpu_ms_per_delivery']} | {f.get('receipts_final_s')} |")
        lines.append("")
    if "console" in doc:
        c = doc["console"]
        lines += [f"| console, {c['tasks']:,} tasks indexed | first request | median | p95 |",
                  "|---|---|---|---|"]
        for name, key in (("/console/ first page", "console_first_page"),
                          ("GET /v1/tasks first page", "api_first_page"),
                          ("/console/ filtered by label and agent", "console_filtered_page")):
            f = c[key]
            lines.append(f"| {name} | {f['first_ms']} ms | {f['median_ms']} ms | "
                         f"{f['p95_ms']} ms |")
        lines.append("")
    return "\n".join(lines)


#: the systems of a throughput round: (name, service kind, subscription path, floor's pool)
SYSTEMS = (("gateway", "gateway", "own", 0), ("gateway_seed", "gateway", "seed", 0),
           ("baseline", "baseline", "seed", 0), ("baseline16", "baseline", "seed", 16))
#: each floor's ratios in the results
_RATIOS = {"baseline": "ratios_to_floor", "baseline16": "ratios_to_bounded_floor"}


async def _one_round(name: str, args: argparse.Namespace, tasks: int,
                     profile: Path | None = None) -> dict[str, Any]:
    if name == "celery":
        return await celery_round(tasks, args.subs)
    kind, path, pool = next((k, p, q) for n, k, p, q in SYSTEMS if n == name)
    return await scenarios.throughput(kind, tasks, args.subs, path=path, profile=profile,
                                      pool=pool)


async def _throughput_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds alternate the systems, so drifting load on the machine hits each alike; each
    system's median round (by deliveries/s) is reported, every round is kept."""
    names = [n for n, _, _, _ in SYSTEMS]
    missing = peer_missing()
    if missing is None:
        names.append("celery")
    else:
        print(f"the Celery peer is left out: {missing}", flush=True)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for name in names:  # warm-up, not reported: the first run on a quiet machine is slower
        await _one_round(name, args, max(1, args.tasks // 10))
    for _ in range(args.rounds):
        for name in names:
            figures = await _one_round(name, args, args.tasks)
            print(json.dumps(figures), flush=True)
            rounds[name].append(figures)
    medians = {name: _median_round(rounds[name]) for name in names}
    out: dict[str, Any] = {**medians, "rounds": rounds}
    for floor_name, key in _RATIOS.items():
        floor = medians[floor_name]
        out[key] = {
            name: {"deliveries_per_s": _ratio(medians[name]["deliveries_per_s"],
                                              floor["deliveries_per_s"]),
                   "cpu_ms_per_delivery": _ratio(medians[name]["cpu_ms_per_delivery"],
                                                 floor["cpu_ms_per_delivery"])}
            for name in names if name != floor_name}
    if args.profile:
        out["profile"] = {}
        for name in ("gateway", "gateway_seed"):
            raw = args.out / f"profile-{name}.txt"
            args.out.mkdir(parents=True, exist_ok=True)
            figures = await _one_round(name, args, args.tasks, profile=raw)
            out["profile"][name] = {"round": figures, **summarize(raw)}
            print(json.dumps(out["profile"][name]), flush=True)
    return out


async def _worker_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """The bare SDK served by 1 and by 2 granian worker processes behind one port (one
    deployment), alternating: does the second core pay?"""
    rounds: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    for _ in range(args.rounds):
        for n in rounds:
            figures = await scenarios.throughput("baseline", args.tasks, args.subs,
                                                 path="seed", workers=int(n))
            print(json.dumps(figures), flush=True)
            rounds[n].append(figures)
    return {"medians": {n: _median_round(r) for n, r in rounds.items()}, "rounds": rounds}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    doc: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                           "endpoint_server": endpoint_server(),
                           "server_settings": SERVER_SETTINGS}
    chosen = set(args.scenarios.split(","))
    if "throughput" in chosen:
        doc["throughput"] = await _throughput_rounds(args)
    if "workers" in chosen:  # not in the default run: the second core, on the floor's app
        doc["workers"] = await _worker_rounds(args)
    if "latency" in chosen:
        doc["latency"] = await scenarios.latency(args.rate / args.subs, args.seconds, args.subs)
        print(json.dumps(doc["latency"]), flush=True)
    if "waiting" in chosen:
        doc["waiting"] = await scenarios.waiting(args.waiting_tasks, args.waiting_per_task)
        print(json.dumps(doc["waiting"]), flush=True)
    if "fanout" in chosen:
        doc["fanout"] = await scenarios.fanout([10, 100, 1000])
        print(json.dumps(doc["fanout"]), flush=True)
    if "console" in chosen:
        from bench.console import console_first_page

        doc["console"] = await console_first_page()
        print(json.dumps(doc["console"]), flush=True)
    doc["bench_minutes"] = round((time.monotonic() - started) / 60, 1)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", default="throughput,latency,waiting,fanout,console",
                        help="comma-separated; also: workers (the floor on 1 vs 2 processes)")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--subs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds per system (the median is reported)")
    parser.add_argument("--rate", type=float, default=60.0,
                        help="latency: deliveries/s offered (tasks/s = rate / --subs)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--waiting-tasks", type=int, default=1000)
    parser.add_argument("--waiting-per-task", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profile", action="store_true",
                        help="after the throughput rounds, one more round of each gateway path "
                             "recorded with py-spy: where the service's CPU goes")
    parser.add_argument("--note", default="",
                        help="a line for the results (e.g. 'noisy machine: other work ran')")
    args = parser.parse_args()
    doc = asyncio.run(run(args))
    if args.note:
        doc["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "latest.md").write_text(table(doc) + "\n")
    print(table(doc))


if __name__ == "__main__":
    main()
