"""Model errors, split by what helps: waiting (retry here) or changing something (fail now).

Runs inside the journaled model-call step, so however many attempts a call takes, the
journal holds one result: the answer, or a terminal failure.

* rate limited (429), the provider's server failing (5xx, overloaded, unavailable), a
  connection error or a timeout (the provider's, or the agent's ``request_timeout``, enforced
  here, inside the step, for every provider): retried here with exponential backoff,
  waiting what the provider's ``Retry-After`` asks where it gives one, at most ``attempts``
  times in all (and waiting at most 5 minutes in all); then the task fails with the last
  error;
* refused (400, 401, 403, 404, an exhausted quota): the task fails at once with the
  provider's message. Retrying would send the same request and get the same answer.

Messages never contain the key: every known secret is replaced before the message leaves.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
)
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.wrapper import WrapperModel
from restate import TerminalError

__all__ = ["RetryingModel", "is_transient", "provider_message"]

log = logging.getLogger("gateway.agent")

_TRANSIENT = (ModelRateLimitError, ModelServerError, ModelUnavailableError, ModelConnectionError,
              ModelRequestTimeout)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_MESSAGE_LIMIT = 300


def is_transient(exc: ModelAPIError) -> bool:
    """Whether waiting may help: rate limits, server errors, connection errors, timeouts."""
    if isinstance(exc, ModelQuotaExceededError):
        return False  # the quota stays exhausted until someone pays or raises it
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, ModelHTTPError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
    return False


def _body_message(body: object) -> str | None:
    """The human message of a provider's error body (``{"error": {"message": ...}}`` and
    the like), or None."""
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "error_description"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
            found = _body_message(value)
            if found:
                return found
    return None


def provider_message(exc: ModelAPIError, secrets: Sequence[str] = ()) -> str:
    """One line: the HTTP status (if any) and what the provider said, without ``secrets``."""
    said = _body_message(exc.body) or (str(exc.body) if isinstance(exc.body, str) else None)
    if not said:
        said = exc.message
    status = f"HTTP {exc.status_code}: " if isinstance(exc, ModelHTTPError) else ""
    text = " ".join(f"{status}{said}".split())
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


class RetryingModel(WrapperModel):
    """Retries a model call's transient errors in place; fails the task on the others."""

    def __init__(self, wrapped: Model, *, label: str, attempts: int,
                 secrets: Sequence[str] = (), request_timeout: float | None = None,
                 initial_delay: float = 0.5,
                 max_delay: float = 10.0, max_retry_after: float = 60.0,
                 max_wait: float = 300.0) -> None:
        super().__init__(wrapped)
        self._label = label
        self._attempts = max(1, attempts)
        self._secrets = tuple(secrets)
        self._request_timeout = request_timeout
        self._initial = initial_delay
        self._max_delay = max_delay
        self._max_retry_after = max_retry_after
        #: waits between attempts add up to at most this: the step must end well before
        #: Restate's abort timeout (10 minutes by default) cuts it short
        self._max_wait = max_wait

    def _delay(self, exc: ModelAPIError | None, attempt: int) -> float:
        if exc is not None and exc.retry_after is not None and exc.retry_after >= 0:
            return min(float(exc.retry_after), self._max_retry_after)
        backoff = min(self._initial * 2.0 ** (attempt - 1), self._max_delay)
        jitter: float = random.uniform(0.8, 1.2)
        return backoff * jitter

    async def request(self, *args: Any, **kwargs: Any) -> ModelResponse:
        attempt = 1
        waited = 0.0
        while True:
            try:
                return await asyncio.wait_for(self.wrapped.request(*args, **kwargs),
                                              self._request_timeout)
            except (ModelAPIError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    said = (f"no answer within {self._request_timeout:g}s (request_timeout)"
                            if self._request_timeout else "the request timed out")
                    delay = self._delay(None, attempt)
                else:
                    said = provider_message(exc, self._secrets)
                    delay = self._delay(exc, attempt)
                    if not is_transient(exc):
                        raise TerminalError(
                            f"{self._label} refused the request: {said}") from None
                if attempt >= self._attempts or waited + delay > self._max_wait:
                    raise TerminalError(f"{self._label} still failing after {attempt} "
                                        f"attempts: {said}") from None
                log.warning("%s: attempt %d of %d failed (%s); retrying in %.1fs",
                            self._label, attempt, self._attempts, said, delay)
                await asyncio.sleep(delay)
                waited += delay
                attempt += 1
