"""A loopback server that speaks OpenAI's chat-completions wire format.

``POST /v1/chat/completions`` answers with a real ``chat.completion`` object whose text is
:func:`answer_for` the last user message. A prompt may script failures first: ``[fail 429
503]`` makes the first request for that prompt get 429 (with ``Retry-After: 1``), the second
503, and the third the answer; ``[always 401]`` refuses every request like OpenAI refuses a
wrong key, echoing the key it was given (as a careless server might), so tests can prove the
gateway never repeats it. ``[slow 3]`` answers the first request after 3 seconds. Every
request is kept, by prompt, with its arrival time and headers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SCRIPT = re.compile(r"\[(fail|always)((?: \d{3})+)\]")
_SLOW = re.compile(r"\[slow ([\d.]+)\]")
_ERRORS = {
    400: ("invalid_request_error", "invalid_request", "The request was malformed."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    403: ("permission_error", "forbidden", "This key may not use this model."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini."),
    500: ("server_error", "server_error", "The server had an error."),
    503: ("server_error", "overloaded", "The engine is currently overloaded."),
}


def answer_for(prompt: str) -> str:
    return f"Loopback model answer #{len(prompt)}: {prompt.upper()}"


@dataclass
class CompletionRequest:
    prompt: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.time)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (a request timeout) is not an error of ours."""


class OpenAIServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, list[CompletionRequest]] = defaultdict(list)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                status, payload, extra = server._answer(body, headers)
                self._send(status, payload, extra)

            def _send(self, status: int, payload: dict[str, Any],
                      extra: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, prompt: str) -> int:
        with self._lock:
            return len(self.requests.get(prompt, []))

    def _answer(self, body: dict[str, Any],
                headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        prompt = _last_user_text(body)
        with self._lock:
            seen = len(self.requests[prompt])
            self.requests[prompt].append(CompletionRequest(prompt, body, headers))
        slow = _SLOW.search(prompt)
        if slow and seen == 0:
            time.sleep(float(slow.group(1)))  # the first request only: a slow moment
        script = _SCRIPT.search(prompt)
        if script:
            codes = [int(c) for c in script.group(2).split()]
            always = script.group(1) == "always"
            if always or seen < len(codes):
                code = codes[0] if always else codes[seen]
                return self._error(code, headers)
        text = answer_for(prompt)
        return 200, {
            "id": f"chatcmpl-loopback-{seen}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "")),
            "system_fingerprint": "fp_loopback",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        }, {}

    @staticmethod
    def _error(code: int, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        kind, error_code, message = _ERRORS.get(code, ("server_error", "error", "Failed."))
        key = headers.get("authorization", "").removeprefix("Bearer ")
        extra = {"retry-after": "1"} if code == 429 else {}
        return code, {"error": {"message": message.format(key=key), "type": kind,
                                "param": None, "code": error_code}}, extra
