"""The API's state (settings, the runtime, the link to Restate) and the checks every
endpoint shares: the API key, the subscriber, the task id in the path."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.requests import Request

from gateway.api._http import ApiError
from gateway.api._limits import ApiLimits
from gateway.api._models import TASK_ID_PATTERN, SubscriberIn, SubscriptionOut
from gateway.api.auth import Caller, KeyRing, Unauthenticated
from gateway.api.restate_link import RestateLink
from gateway.channels import check_untrusted
from gateway.config import GatewayConfig, HookSource
from gateway.config import Scope as KeyScope
from gateway.core import Subscription, Target, UserInputError
from gateway.durable import Runtime

__all__ = ["ApiSettings", "FrontDoor", "door_of", "subscription_out", "task_id_param"]

_TASK_ID = re.compile(TASK_ID_PATTERN)


@dataclass(frozen=True)
class ApiSettings:
    """What the API takes from the configuration (replaced whole on a reload)."""

    keys: KeyRing
    hooks: Mapping[str, HookSource]
    max_body_bytes: int = 1_048_576
    #: channels callers may subscribe on (None: those of the built-in named plugins)
    channels: frozenset[str] | None = None
    public_url: str | None = None
    limits: ApiLimits = field(default_factory=ApiLimits)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> ApiSettings:
        api = config.api
        return cls(keys=KeyRing(api.keys), hooks=dict(config.hooks),
                   max_body_bytes=api.max_body_bytes,
                   channels=None if api.channels is None else frozenset(api.channels),
                   public_url=api.public_url,
                   limits=ApiLimits(header_timeout=api.header_timeout,
                                    body_timeout=api.body_timeout,
                                    keep_alive_timeout=api.keep_alive_timeout,
                                    max_connections=api.max_connections))


class FrontDoor:
    """The API's state: settings (swappable on reload), the runtime, the link to Restate."""

    def __init__(self, settings: ApiSettings, runtime: Callable[[], Runtime],
                 restate: RestateLink) -> None:
        self.settings = settings
        self.runtime = runtime
        self.restate = restate

    # -- checks --------------------------------------------------------------------------

    def authorize(self, request: Request, scope: KeyScope) -> Caller:
        try:
            caller = self.settings.keys.authenticate(request.headers.get("authorization"))
        except Unauthenticated as exc:
            raise ApiError(401, "unauthenticated", str(exc),
                           headers={"WWW-Authenticate": "Bearer"}) from None
        if scope not in caller.scopes:
            raise ApiError(403, "forbidden", f"the API key {caller.name!r} lacks the scope "
                                             f"{scope!r}")
        return caller

    def subscription(self, rt: Runtime, task_id: str, spec: SubscriberIn,
                     field: str) -> Subscription:
        """The subscriber validated against its channel now (422 naming ``field`` if not), as
        one that does not come from the YAML file (see gateway.channels.check_untrusted)."""
        if spec.template is not None and spec.template not in rt.renderer.template_names:
            raise ApiError.invalid(field, f"unknown template {spec.template!r}")
        try:
            sub = Subscription(
                channel=spec.channel, target=spec.target, outcomes=spec.outcomes,
                template=spec.template,
                fallback=[Target(channel=t.channel, target=t.target) for t in spec.fallback],
            )
            allowed = self.settings.channels
            target = check_untrusted(rt.channels, sub, allowed)
            fallback = [t.model_copy(update={"target": check_untrusted(rt.channels, t, allowed)})
                        for t in sub.fallback]
        except (UserInputError, ValueError) as exc:
            raise ApiError.invalid(field, rt.redact(str(exc).splitlines()[0])) from None
        return sub.model_copy(update={"target": target, "fallback": fallback}).identified(
            task_id)

    def status_url(self, request: Request, task_id: str) -> str:
        base = self.settings.public_url or str(request.base_url).rstrip("/")
        return f"{base}/v1/tasks/{quote(task_id, safe='')}"


def door_of(request: Request) -> FrontDoor:
    door: FrontDoor = request.app.state.door
    return door


def task_id_param(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not _TASK_ID.fullmatch(task_id):  # `$` of a match would let a final newline pass
        raise ApiError(404, "not_found", "no such task (task ids are letters, digits and "
                                         "_.:@-, at most 128)")
    return task_id


def subscription_out(rt: Runtime, task_id: str, sub: Subscription) -> SubscriptionOut:
    assert sub.id is not None
    redacted = rt.channels.get(sub.channel).channel.redact_target(sub.target)
    return SubscriptionOut(task_id=task_id, subscription_id=sub.id, channel=sub.channel,
                           target=redacted)
