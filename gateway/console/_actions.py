"""The console's actions: the same code as the API's endpoints, behind a form with a CSRF
token. Each answers by going back to the task's page (303), or with an error page."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.api._door import door_of, task_id_param
from gateway.api._http import ApiError
from gateway.api._models import SubscriptionCreate
from gateway.api._status_cache import forget
from gateway.api._tasks import cancel_for, subscribe_to
from gateway.api._tenancy import workflow_key
from gateway.console._access import PageError, check_csrf, viewer
from gateway.console._pages import form_of
from gateway.console._render import SECURITY_HEADERS, base_of

__all__ = ["back_to_task", "cancel", "refused_page", "subscribe"]


def back_to_task(request: Request, task_id: str) -> Response:
    return RedirectResponse(f"{base_of(request)}/tasks/{quote(task_id, safe='')}",
                            status_code=303, headers=SECURITY_HEADERS)


def refused_page(exc: ApiError) -> PageError:
    """The page of an action the API refused (404, 409, 422, ...)."""
    titles = {404: "No such task", 409: "Nothing to do", 422: "Not accepted"}
    return PageError(exc.status, titles.get(exc.status, "Refused"), exc.message)


async def cancel(request: Request) -> Response:
    who = viewer(request, "subscribe")
    check_csrf(request, who, (await form_of(request)).get("csrf"))
    task_id = task_id_param(request)
    try:
        await cancel_for(door_of(request), who.caller, task_id,
                         str(request.path_params["subscription_id"]))
    except ApiError as exc:
        raise refused_page(exc) from None
    forget(door_of(request).restate, workflow_key(who.caller, task_id))
    return back_to_task(request, task_id)


async def subscribe(request: Request) -> Response:
    who = viewer(request, "subscribe")
    form = await form_of(request)
    check_csrf(request, who, form.get("csrf"))
    task_id = task_id_param(request)
    try:
        spec = SubscriptionCreate.model_validate(form.get("subscriber", "").strip())
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise PageError(422, "Not accepted", f"subscriber: {message}") from None
    try:
        await subscribe_to(door_of(request), who.caller, task_id, spec)
    except ApiError as exc:
        raise refused_page(exc) from None
    forget(door_of(request).restate, workflow_key(who.caller, task_id))
    return back_to_task(request, task_id)
