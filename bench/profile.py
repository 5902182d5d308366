"""Where the service process spends its CPU: a py-spy raw profile split into parts.

Each sample is charged to the innermost frame that belongs to a known part: the HTTP server
(hypercorn, h2, granian), the Restate SDK, the outbound HTTP client (httpx, httpcore), or our
own code (gateway, its plugins); pydantic and pydantic-ai are charged to whoever called them.
Samples of a thread with no Python frame at all are granian's Rust threads (its HTTP stack):
"HTTP server (native)". Samples with none of these (the event loop waiting or switching
tasks) are "event loop, other".
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

__all__ = ["PARTS", "summarize"]

#: part -> the file paths (as py-spy shows them) of its frames; the innermost frame that
#: matches one decides
PARTS: dict[str, tuple[str, ...]] = {
    "HTTP server": ("hypercorn/", "h2/", "hpack/", "hyperframe/", "priority/", "h11/",
                    "granian/", "gateway/local/endpoint"),
    "Restate SDK": ("restate/",),
    "outbound HTTP client": ("httpx/", "httpcore/", "anyio/", "standardwebhooks/",
                             "gateway/channels/_post"),
    "our handlers": ("gateway/", "gateway_channel_"),
}
#: the entry point's frames (the command, the serving loop): below every sample, no part
_ENTRY = ("gateway/__main__", "gateway/cli/", "gateway/local/server")


def _path(frame: str) -> str:
    return frame.rpartition(" (")[2].split(":")[0]


def _part(frames: list[str]) -> str:
    if len(frames) == 1:  # the process alone: a thread running no Python code
        return "HTTP server (native)"
    for frame in reversed(frames):
        path = _path(frame)
        if path.startswith(_ENTRY):
            continue
        for part, prefixes in PARTS.items():
            if path.startswith(prefixes):
                return part
    return "event loop, other"


def summarize(raw: Path, top: int = 8) -> dict[str, object]:
    """Shares (percent of samples) per part, and our code's costliest functions (inclusive)."""
    parts: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        parts[_part(frames)] += n
        seen = set()
        for frame in frames:
            path = _path(frame)
            if path.startswith(PARTS["our handlers"]) and not path.startswith(_ENTRY):
                name = frame.split(":")[0] + ")"
                if name not in seen:
                    seen.add(name)
                    ours[name] += n
    if not total:
        return {"samples": 0}
    return {"samples": total,
            "parts_percent": {k: round(100 * v / total, 1) for k, v in parts.most_common()},
            "our_costliest_inclusive_percent": {k: round(100 * v / total, 1)
                                                for k, v in ours.most_common(top)}}
