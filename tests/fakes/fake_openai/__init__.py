"""A stateful fake OpenAI HTTP server for tests and benches (the real SDK talks to it over HTTP).

openai-python 3.x sends requests through httpx2, which respx cannot intercept, so tests
point the SDK at this server instead (`base_url=fake.base_url` or OPENAI_BASE_URL):

    with FakeOpenAI() as fake:
        client = OpenAI(api_key="sk-test", base_url=fake.base_url)
        ...
        fake.last("/responses").body["instructions"]

Endpoints: GET /v1/models[/{id}]; /v1/conversations (create with items, retrieve, update,
delete, list/add items); POST /v1/responses and POST /v1/chat/completions, streamed
(real event order, `sequence_number`s) or not; /v1/files (multipart upload, fine-tune JSONL
checked line by line) and /v1/fine_tuning/jobs (create, retrieve, list, events, checkpoints,
cancel) whose jobs move through their statuses over time (see fine_tuning.py);
/v1/vector_stores (stores, file batches, attached files, search; see vector_stores.py), and
the `file_search` tool in responses, with `file_citation` annotations.

How it answers (deterministic, from the input; see brain.py):
  - the last user message echoed: "You said: <text>", streamed word by word;
  - `[[call NAME {"arg": ...}]]` -> a function call if tool NAME is offered; several
    directives -> parallel calls in one response; tool results sent back -> "Results: a; b";
    `[[say Let me check.]]` beside them -> that text first, in the same response;
  - `[[code print(1+1)]]` -> a code_interpreter_call (logs "2") if that tool is offered,
    then "The code printed: 2".

How it fails:
  - key "sk-bad" -> 401 invalid_api_key (the message echoes the key, as the real one does);
  - an unknown model -> 404 model_not_found;
  - model "rate-limited" -> 429 rate_limit_exceeded, "server-error" -> 500 (both with a
    short retry-after-ms so SDK retries are quick; count them with `fake.count(path)`);
  - model "fail-midstream" -> a few text deltas, then `response.failed` (Responses) or a
    dropped connection (chat); "fail-midstream-error" sends an `error` event instead;
  - input over `max_input_chars` (20,000) -> 400 context_length_exceeded (Responses with
    truncation="auto" only counts the new input, as the server may drop old items);
  - a body that does not fit the SDK's own request type for the endpoint (a function tool
    without `strict`, an unknown field) -> OpenAI's 400 (see validation.py);
  - a conversation holding a function call without its output -> 400, as the real API does;
  - knobs: `output_token_limit` (cut replies: finish_reason "length" / response.incomplete),
    `conversations_api=False` (404 like a chat-completions-only server), `error_style=
    "fastapi"` ({"detail": ...} bodies), `refuse` (answer chosen requests with an error).
"""
from tests.fakes.fake_openai.errors import FakeAPIError
from tests.fakes.fake_openai.server import (DEFAULT_MODELS, FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR,
                                            RATE_LIMITED, SERVER_ERROR, FakeConversation, FakeOpenAI,
                                            RecordedRequest)

__all__ = ["FakeOpenAI", "FakeAPIError", "FakeConversation", "RecordedRequest", "DEFAULT_MODELS",
           "RATE_LIMITED", "SERVER_ERROR", "FAIL_MIDSTREAM", "FAIL_MIDSTREAM_ERROR"]
