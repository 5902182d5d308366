"""The console's pages: sign in and out, recent tasks, a task's timeline."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.api._door import door_of, task_id_param
from gateway.api._http import ApiError, read_body
from gateway.api._tenancy import caller_task_id, workflow_key
from gateway.api.auth import Unauthenticated, hash_key
from gateway.api.restate_link import RestateLink
from gateway.api.task_list import TaskFilter, TaskList, list_tasks, parse_filter
from gateway.console._access import PageError, Viewer, check_csrf, sessions_of, viewer
from gateway.console._render import SECURITY_HEADERS, base_of, page
from gateway.console._session import COOKIE, SESSION_SECONDS
from gateway.console._timeline import Timeline, build_timeline
from gateway.core import TaskState, TaskStatus
from gateway.observability.trace import stable_trace_id

__all__ = ["form_of", "login", "login_form", "logout", "task_page", "task_status", "tasks_page",
           "timeline_of"]

_FORM_LIMIT = 16_384


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form (the first value of each field), bounded in size."""
    body = await read_body(request, _FORM_LIMIT)
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "Bad form", "the form could not be read; reload the page") from None
    return {k: v[0] for k, v in fields.items()}


def _safe_next(base: str, target: str | None) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    if target and target.startswith(base + "/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return base + "/"


async def login_form(request: Request) -> Response:
    base = base_of(request)
    return page("login.html", request, title="Sign in", who=None, problem=None,
                next=_safe_next(base, request.query_params.get("next")))


async def login(request: Request) -> Response:
    base = base_of(request)
    form = await form_of(request)
    key = form.get("api_key", "").strip()
    keys = door_of(request).settings.keys
    target = _safe_next(base, form.get("next"))
    try:
        caller = keys.authenticate(f"Bearer {key}")
    except Unauthenticated as exc:
        why = "enter an API key" if not key else str(exc)
        return page("login.html", request, status=401, title="Sign in", who=None,
                    problem=f"Not signed in: {why}", next=target)
    if "read" not in caller.scopes:
        raise PageError(403, "Missing scope", f"the API key {caller.name!r} lacks the scope "
                                              "'read', which the console needs")
    cookie = sessions_of(request).issue(hash_key(key))
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    secure = request.url.scheme == "https" or \
        request.headers.get("x-forwarded-proto", "").lower() == "https"
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, path=base + "/",
                        httponly=True, samesite="strict", secure=secure)
    return response


async def logout(request: Request) -> Response:
    who = viewer(request, "read")
    check_csrf(request, who, (await form_of(request)).get("csrf"))
    base = base_of(request)
    response = RedirectResponse(base + "/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path=base + "/")
    return response


async def tasks_page(request: Request) -> Response:
    who = viewer(request, "read")
    params = [(k, v) for k, v in request.query_params.multi_items() if v.strip()]
    problem = None
    try:
        flt = parse_filter(params)
        listing = await list_tasks(door_of(request).restate, who.caller, flt)
    except ApiError as exc:
        flt, problem = TaskFilter(), exc.message
        listing = TaskList(tasks=[])
    label_text = " ".join(f"{k}={v}" for k, v in flt.labels.items())
    return page("tasks.html", request, title="Recent tasks", who=who, page=listing, flt=flt,
                states=[s.value for s in TaskState if s is not TaskState.UNKNOWN],
                label_text=label_text, query=flt.query_string(), cursor=flt.cursor,
                filtered=bool(flt.query_string()), problem=problem)


async def task_status(request: Request, who: Viewer) -> tuple[str, TaskStatus]:
    """The task of the path as the viewer knows it (404 page when it has none such)."""
    try:
        task_id = task_id_param(request)
    except ApiError:
        raise PageError(404, "No such task", "task ids are letters, digits and _.:@-, at "
                                             "most 128") from None
    door = door_of(request)
    key = workflow_key(who.caller, task_id)
    status = await door.restate.status(key)
    if status.state is TaskState.UNKNOWN and not await door.restate.exists(key):
        raise PageError(404, "No such task", f"no task {task_id!r} (never started, or past "
                                             "its retention)")
    if status.state in (TaskState.UNKNOWN, TaskState.NOT_STARTED) \
            and await door.restate.exists(key):
        status = status.model_copy(update={"state": TaskState.RUNNING})
    return key, status.model_copy(update={"task_id": caller_task_id(who.caller, status.task_id)})


def timeline_of(status: TaskStatus, who: Viewer) -> Timeline:
    # full targets for keys that may act on deliveries; masked for read-only keys
    return build_timeline(status, full_targets=who.may("subscribe"))


async def _run_invocation(link: RestateLink, key: str) -> str | None:
    """The id of the task's ``run`` invocation (admin query), for the link to Restate's UI."""
    if "'" in key or "\\" in key:
        return None
    query = ("SELECT id FROM sys_invocation WHERE target_service_name = "
             f"'AsyncNotificationsAgent' AND target_service_key = '{key}' AND "
             "target_handler_name = 'run' LIMIT 1")
    r = await link._request("POST", f"{link.admin_url}/query",
                            json.dumps({"query": query}).encode(), accept="application/json")
    rows = r.json().get("rows", []) if r.status_code == 200 else []
    return str(rows[0]["id"]) if rows else None


async def task_page(request: Request) -> Response:
    who = viewer(request, "read")
    key, status = await task_status(request, who)
    link = door_of(request).restate
    admin_ui = f"{link.admin_url}/ui"
    invocation = await _run_invocation(link, key)
    run_link = f"{admin_ui}/invocations/{quote(invocation, safe='')}" if invocation else None
    return page("task.html", request, title=status.task_id, who=who, task_id=status.task_id,
                tl=timeline_of(status, who), trace_id=f"{stable_trace_id(key):032x}",
                run_link=run_link, admin_ui=admin_ui,
                redrive=request.app.state.redrive_enabled)
