"""`FakeOpenAI`: the fake server object: state, request recording, auth/model checks, lifecycle."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.fake_openai import errors
from tests.fakes.fake_openai.errors import FakeAPIError
from tests.fakes.fake_openai.validation import check_request

# Model names that trigger failures instead of answers (see the package docstring).
RATE_LIMITED, SERVER_ERROR = "rate-limited", "server-error"
FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR = "fail-midstream", "fail-midstream-error"
SPECIAL_MODELS = {RATE_LIMITED, SERVER_ERROR, FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR}

DEFAULT_MODELS: list[dict] = [
    {"id": "gpt-4.1-mini", "object": "model", "created": 1744318173, "owned_by": "system",
     "shutdown_date": "2027-01-14"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system",
     "shutdown_date": "2027-01-14"},
    {"id": "gpt-5-mini", "object": "model", "created": 1754425928, "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"},
]


def parse_multipart(raw: bytes, content_type: str) -> dict:
    """A multipart/form-data body as {field: text, or {"filename", "content_type", "data"} for a
    file}, read with the standard library's MIME parser."""
    from email.parser import BytesParser
    from email.policy import HTTP
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            fields[name] = {"filename": filename, "content_type": part.get_content_type(), "data": data}
    return fields


@dataclass
class RecordedRequest:
    """One request as the server saw it (tests assert on these)."""
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any = None


@dataclass
class FakeConversation:
    id: str
    created_at: int
    metadata: dict = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at,
                "metadata": self.metadata}


class FakeOpenAI:
    """A stateful fake OpenAI API on 127.0.0.1 (random port), run by uvicorn in a thread.

    Every request body is checked against the openai SDK's own request type for its endpoint
    (see validation.py) and refused with OpenAI's 400 if it does not fit.

    Knobs (plain attributes, change them between requests): `delta_delay` (seconds slept
    before each streamed delta), `max_input_chars` (longer input -> 400
    context_length_exceeded), `retry_after_ms` (sent with 429/500 so SDK retries are fast),
    `bad_keys`, `models`, `output_token_limit` (the model's own cap on a reply, in words;
    a request's max_output_tokens / max_completion_tokens also caps it), `conversations_api`
    (False: the Conversations API answers 404, like a chat-completions-only server),
    `error_style` ("openai", or "fastapi" for {"detail": ...} bodies like `transformers
    serve`), `refuse` (a function of the RecordedRequest returning a FakeAPIError to answer
    with, or None); fine-tuning: `ft_step_s` (seconds per tick of a job's life),
    `ft_metrics_every` (steps between metrics events), `ft_refuse_create` (None,
    "training_not_available" or "quota"; see fine_tuning.py); vector stores: `vs_process_s`
    (seconds an attached file stays in_progress), `vs_fail` ({filename: last_error code}; see
    vector_stores.py). State: `requests`, `conversations`, `files`, `jobs`, `vector_stores`.
    """

    def __init__(self, delta_delay: float = 0.0, max_input_chars: int = 20_000,
                 retry_after_ms: int = 5, bad_keys: tuple[str, ...] = ("sk-bad",)):
        self._defaults = dict(delta_delay=delta_delay, max_input_chars=max_input_chars,
                              retry_after_ms=retry_after_ms, bad_keys=tuple(bad_keys),
                              output_token_limit=None, conversations_api=True, error_style="openai",
                              refuse=None, ft_step_s=0.02, ft_metrics_every=2, ft_refuse_create=None,
                              vs_process_s=0.05, vs_fail={})
        self.refuse: Callable[[RecordedRequest], FakeAPIError | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.conversations: dict[str, FakeConversation] = {}
        self.files: dict = {}   # file id -> fine_tuning.FakeFile
        self.jobs: dict = {}    # job id -> fine_tuning.FakeJob
        self.vector_stores: dict = {}   # vector store id -> vector_stores.FakeVectorStore
        self.reset()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None
        self.app = self._build_app()

    # --- lifecycle -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What to give the SDK as base_url / OPENAI_BASE_URL."""
        if self.port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        """Bind a free port and serve in a daemon thread; returns once it accepts connections."""
        # Binding first means the port is known (and reserved) before uvicorn starts.
        # proto=IPPROTO_TCP matters: asyncio only disables Nagle on accepted sockets whose proto
        # says TCP, and with Nagle on, streamed events stall ~40 ms on keep-alive connections.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("FakeOpenAI did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget requests and conversations and restore the knobs (call between tests)."""
        self.requests.clear()
        self.conversations.clear()
        self.files.clear()
        self.jobs.clear()
        self.vector_stores.clear()
        for name, value in self._defaults.items():
            setattr(self, name, dict(value) if isinstance(value, dict) else value)
        self.models = [dict(m) for m in DEFAULT_MODELS]

    # --- inspection ----------------------------------------------------------------
    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests whose path ends with `path` (e.g. "/responses")."""
        return [r for r in self.requests
                if r.path.endswith(path) and (method is None or r.method == method)]

    def count(self, path: str, method: str | None = None) -> int:
        return len(self.requests_to(path, method))

    def last(self, path: str, method: str | None = None) -> RecordedRequest:
        found = self.requests_to(path, method)
        if not found:
            raise AssertionError(f"no request to {path} was recorded")
        return found[-1]

    # --- helpers for the route modules ---------------------------------------------
    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:24]}"

    async def begin(self, request: Request) -> Any:
        """Record the request, check the key and the body, and return the body (or None)."""
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):   # file uploads
            body = parse_multipart(raw, content_type)
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(request.method, request.url.path, dict(request.headers),
                                   dict(request.query_params), body)
        self.requests.append(recorded)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise errors.missing_key()
        if auth[7:].strip() in self.bad_keys:
            raise errors.invalid_key(auth[7:].strip())
        if isinstance(body, str):
            raise FakeAPIError(400, "We could not parse the JSON body of your request.")
        if request.method == "POST":
            check_request(request.method, request.url.path, body if body is not None else {})
        refusal = self.refuse(recorded) if self.refuse else None
        if refusal is not None:
            raise refusal
        return body

    def cap_for(self, requested: Any) -> int | None:
        """The most words a reply may have: the request's limit or the model's own, if any."""
        caps = [c for c in (requested, self.output_token_limit) if isinstance(c, int)]
        return min(caps) if caps else None

    def check_model(self, model: Any) -> str:
        """Raise the error a model name asks for; return the model when it can answer."""
        if not model:
            raise FakeAPIError(400, "Missing required parameter: 'model'.", param="model",
                               code="missing_required_parameter")
        if model == RATE_LIMITED:
            raise errors.rate_limited(model, self.retry_after_ms)
        if model == SERVER_ERROR:
            raise errors.server_error(self.retry_after_ms)
        if model not in SPECIAL_MODELS and model not in {m["id"] for m in self.models}:
            raise errors.model_not_found(model)
        return model

    def check_length(self, chars: int, param: str) -> None:
        if chars > self.max_input_chars:
            raise errors.context_too_long(param, chars // 4, self.max_input_chars // 4)

    # --- app -----------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        from tests.fakes.fake_openai import chat, fine_tuning, responses, vector_stores   # they import this module

        async def list_models(request: Request):
            await self.begin(request)
            return JSONResponse({"object": "list", "data": self.models})

        async def get_model(request: Request):
            await self.begin(request)
            model_id = request.path_params["model"]
            for m in self.models:
                if m["id"] == model_id:
                    return JSONResponse(m)
            raise errors.model_not_found(model_id)

        routes = [Route("/v1/models", list_models, methods=["GET"]),
                  Route("/v1/models/{model:path}", get_model, methods=["GET"]),
                  *responses.routes(self), *chat.routes(self), *fine_tuning.routes(self),
                  *vector_stores.routes(self)]
        return Starlette(routes=routes,
                         exception_handlers={FakeAPIError: lambda request, exc: exc.response(self.error_style)})
