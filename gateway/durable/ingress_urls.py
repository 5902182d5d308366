"""Several Restate ingress URLs for the API: any node of a cluster serves the ingress, so the API
keeps working while the node it was using is down.

``--restate-ingress-url`` (``GATEWAY_RESTATE_INGRESS_URL``) takes one URL or several separated
by commas. They are tried in order, starting with the last one that answered; the next one is
tried only when a connection cannot be made (refused, unreachable, connect timeout), where no
request has left, so nothing is sent twice. A request that was sent and then failed is not
repeated on another node. Behind one Kubernetes Service a single URL is enough.
"""

from __future__ import annotations

import httpx

from gateway.core import UserInputError

__all__ = ["CONNECT_ERRORS", "IngressUrls", "parse_ingress_urls", "shown"]

#: errors raised before any byte of the request has left: safe to try the next URL
CONNECT_ERRORS: tuple[type[httpx.HTTPError], ...] = (httpx.ConnectError, httpx.ConnectTimeout)

_HINT = "give one http(s) URL or several separated by commas (--restate-ingress-url)"


def shown(url: str) -> str:
    """A URL as logs and errors show it: a password in it masked."""
    parsed = httpx.URL(url)
    masked = parsed.copy_with(username=parsed.username, password="***")
    return str(masked) if parsed.password else url


def parse_ingress_urls(spec: str) -> tuple[str, ...]:
    """The URLs of a comma-separated list, without trailing slashes, duplicates dropped."""
    urls: list[str] = []
    for part in spec.split(","):
        item = part.strip().rstrip("/")
        if not item:
            raise UserInputError(f"Restate ingress URL list {spec!r} has an empty entry: {_HINT}")
        try:
            url = httpx.URL(item)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise UserInputError(f"Restate ingress URL {shown_item(item)!r} is not an http(s) "
                                 f"URL with a host: {_HINT}")
        if url.query or url.fragment:
            raise UserInputError(f"Restate ingress URL {shown(item)!r} has a query or "
                                 f"fragment: {_HINT}")
        if item not in urls:
            urls.append(item)
    return tuple(urls)


def shown_item(item: str) -> str:
    """``shown`` for text that may not even parse as a URL: anything before an ``@`` masked."""
    return "***@" + item.rsplit("@", 1)[1] if "@" in item else item


class IngressUrls:
    """The ingress URLs in the order to try them: the last one that answered first."""

    def __init__(self, spec: str) -> None:
        self.urls = parse_ingress_urls(spec)
        self._preferred = 0

    def __str__(self) -> str:
        return ", ".join(shown(url) for url in self.urls)

    def in_order(self) -> list[str]:
        """Every URL once: the preferred one, then those after it, then those before it."""
        n = len(self.urls)
        return [self.urls[(self._preferred + i) % n] for i in range(n)]

    def answered(self, url: str) -> None:
        """``url`` answered: use it first from now on."""
        self._preferred = self.urls.index(url)
