"""OpenAI's error JSON: {"error": {"message", "type", "param", "code"}}."""
from __future__ import annotations

from starlette.responses import JSONResponse


class FakeAPIError(Exception):
    """Raised inside a handler; the server turns it into the real error response."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def response(self, style: str = "openai") -> JSONResponse:
        """The error as OpenAI sends it, or (style "fastapi") as FastAPI servers such as
        `transformers serve` do: {"detail": message}."""
        if style == "fastapi":
            body = {"detail": self.message}
        else:
            body = {"error": {"message": self.message, "type": self.type,
                              "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid_key(key: str) -> FakeAPIError:
    # The real message echoes (part of) the key; providers must not pass it through.
    return FakeAPIError(401, f"Incorrect API key provided: {key}. You can find your API key at "
                             "https://platform.openai.com/account/api-keys.", code="invalid_api_key")


def missing_key() -> FakeAPIError:
    return FakeAPIError(401, "You didn't provide an API key. You need to provide your API key in an "
                             "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


def model_not_found(model: str) -> FakeAPIError:
    return FakeAPIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                        code="model_not_found", param="model")


def rate_limited(model: str, retry_after_ms: int) -> FakeAPIError:
    return FakeAPIError(429, f"Rate limit reached for {model} in organization org-fake on requests "
                             "per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20ms.",
                        type_="requests", code="rate_limit_exceeded",
                        headers={"retry-after-ms": str(retry_after_ms)})


def server_error(retry_after_ms: int) -> FakeAPIError:
    return FakeAPIError(500, "The server had an error while processing your request. Sorry about that!",
                        type_="server_error", headers={"retry-after-ms": str(retry_after_ms)})


def context_too_long(param: str, tokens: int, limit: int) -> FakeAPIError:
    return FakeAPIError(400, f"This model's maximum context length is {limit} tokens. However, your "
                             f"messages resulted in {tokens} tokens. Please reduce the length of the messages.",
                        code="context_length_exceeded", param=param)


def dangling_call(call_id: str) -> FakeAPIError:
    # The real API's words when a conversation holds a function call whose output never came.
    return FakeAPIError(400, f"No tool output found for function call {call_id}.", param="input")
