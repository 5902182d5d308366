"""Pure text helpers shared by the renderer and the channels."""

from __future__ import annotations

__all__ = ["ELLIPSIS", "shorten"]

ELLIPSIS = "…"


def shorten(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """``text`` if it fits in ``limit`` characters, else a shorter text ending in ``ellipsis``.

    The cut falls on a word boundary when there is one in the second half of the room left;
    a single overlong word is cut inside, but never without the ellipsis.
    """
    if limit < len(ellipsis):
        raise ValueError(f"limit {limit} is shorter than the ellipsis {ellipsis!r}")
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    head = text[:room]
    if not text[room].isspace():
        cut = max((i for i, ch in enumerate(head) if ch.isspace()), default=-1)
        if cut >= room // 2:
            head = head[:cut]
    head = head.rstrip()
    if len(head) < room // 2:  # the boundary was too far back: cut inside the word instead
        head = text[:room].rstrip()
    return head + ellipsis
