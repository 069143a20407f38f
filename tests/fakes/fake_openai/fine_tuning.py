"""Files (`/v1/files`) and fine-tuning jobs (`/v1/fine_tuning/jobs`) with state that moves over time.

A job's life is counted in ticks of `fake.ft_step_s` seconds from its creation, and worked
out whenever the job is read (no background thread): validating_files (2 ticks) -> queued
(1 tick) -> running (one tick per training step: epochs x ceil(examples / batch size), a
metrics event every `fake.ft_metrics_every` steps, a checkpoint at the end of each epoch) ->
succeeded (fine_tuned_model `ft:<model>:org-fake:<suffix>:<8 chars>`, a results file). A
training file with fewer than 10 examples fails at the end of validation with
`invalid_n_examples`, as OpenAI's does. Cancel ends an unfinished job as `cancelled`.

Refusals: `fake.ft_refuse_create` = "training_not_available" (403, what OpenAI answers
every organisation after 2027-01-06) or "quota" (429 insufficient_quota).

The shapes follow OpenAI's OpenAPI document (FineTuningJob, FineTuningJobEvent,
FineTuningJobCheckpoint, OpenAIFile). It leaves metrics events' `data` an untyped object;
the fields here (step, train_loss, valid_loss, total_steps, *_mean_token_accuracy) are the
ones OpenAI sends.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.fake_openai.errors import FakeAPIError

if TYPE_CHECKING:
    from tests.fakes.fake_openai.server import FakeOpenAI

MIN_EXAMPLES = 10
ROLES = {"system", "developer", "user", "assistant", "tool"}
FINE_TUNABLE = ("gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18",
                "gpt-4.1-mini", "gpt-4o")
VALIDATING_TICKS, QUEUED_TICKS = 2, 1


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_json(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": None, "status_details": None}


@dataclass
class FakeJob:
    """One fine-tuning job; `advance` brings it up to date with the clock."""
    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    hyperparameters: dict          # resolved: n_epochs, batch_size, learning_rate_multiplier
    created_at: int
    started: float                 # time.monotonic() at creation
    n_train: int
    train_words: int
    status: str = "validating_files"
    ticks_done: int = -1
    events: list[dict] = field(default_factory=list)        # oldest first
    checkpoints: list[dict] = field(default_factory=list)   # oldest first
    error: dict | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_train / self.hyperparameters["batch_size"]))

    @property
    def total_steps(self) -> int:
        return self.hyperparameters["n_epochs"] * self.steps_per_epoch

    def to_json(self) -> dict:
        hp = self.hyperparameters
        return {"id": self.id, "object": "fine_tuning.job", "model": self.model, "created_at": self.created_at,
                "finished_at": self.finished_at, "fine_tuned_model": self.fine_tuned_model,
                "organization_id": "org-fake", "result_files": self.result_files, "status": self.status,
                "validation_file": self.validation_file, "training_file": self.training_file,
                "hyperparameters": hp, "trained_tokens": self.trained_tokens, "error": self.error,
                "seed": self.seed, "estimated_finish": None, "integrations": [], "metadata": None,
                "user_provided_suffix": self.suffix,
                "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}


def routes(fake: "FakeOpenAI") -> list[Route]:
    """The Starlette routes, bound to `fake`'s state."""
    api = _FineTuningAPI(fake)
    return [
        Route("/v1/files", api.upload, methods=["POST"]),
        Route("/v1/files/{fid}", api.get_file, methods=["GET"]),
        Route("/v1/files/{fid}", api.delete_file, methods=["DELETE"]),
        Route("/v1/fine_tuning/jobs", api.create_job, methods=["POST"]),
        Route("/v1/fine_tuning/jobs", api.list_jobs, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{jid}", api.get_job, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{jid}/cancel", api.cancel_job, methods=["POST"]),
        Route("/v1/fine_tuning/jobs/{jid}/events", api.list_events, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{jid}/checkpoints", api.list_checkpoints, methods=["GET"]),
    ]


def check_chat_jsonl(data: bytes) -> int:
    """The number of examples in a chat-format JSONL file; OpenAI's 400 for the first bad line."""
    def bad(line: int, reason: str) -> FakeAPIError:
        return FakeAPIError(400, f"Invalid file format for Fine-Tuning API. Line {line}, key \"messages\": {reason}",
                            code="invalid_file_format", param="file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FakeAPIError(400, "Invalid file format for Fine-Tuning API. The file must be UTF-8 encoded JSONL.",
                           code="invalid_file_format", param="file") from None
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise FakeAPIError(400, f"Invalid file format for Fine-Tuning API. Line {number} is not valid JSON.",
                               code="invalid_file_format", param="file") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            raise bad(number, "each line must be an object with a non-empty \"messages\" list.")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise bad(number, "every message needs a role of system, user, assistant or tool.")
            if not isinstance(message.get("content"), (str, list)):
                raise bad(number, "every message needs a content string.")
        if not any(m["role"] == "assistant" for m in messages):
            raise bad(number, "at least one message must be from the assistant.")
        count += 1
    if not count:
        raise FakeAPIError(400, "Invalid file format for Fine-Tuning API. The file has no examples.",
                           code="invalid_file_format", param="file")
    return count


def _page(items: list[dict], request: Request, default_limit: int) -> dict:
    """OpenAI's cursor page over `items` (newest first): `after` an id, at most `limit`."""
    after = request.query_params.get("after")
    limit = int(request.query_params.get("limit") or default_limit)
    start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0) if after else 0
    data = items[start:start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(items),
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


class _FineTuningAPI:
    def __init__(self, fake: "FakeOpenAI"):
        self.fake = fake

    # --- files ---------------------------------------------------------------------
    async def upload(self, request: Request):
        body = await self.fake.begin(request)
        if not isinstance(body, dict) or not isinstance(body.get("file"), dict):
            raise FakeAPIError(400, "Missing required parameter: 'file'.", code="missing_required_parameter",
                               param="file")
        purpose = body.get("purpose")
        if purpose not in ("assistants", "batch", "fine-tune", "vision", "user_data", "evals"):
            raise FakeAPIError(400, f"Invalid value for 'purpose': {purpose!r}.", code="invalid_value",
                               param="purpose")
        upload = body["file"]
        if purpose == "fine-tune":
            if not upload["filename"].endswith(".jsonl"):
                raise FakeAPIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl",
                                   code="invalid_file_format", param="file")
            check_chat_jsonl(upload["data"])
        stored = FakeFile(self.fake.new_id("file"), upload["filename"], purpose, upload["data"], int(time.time()))
        self.fake.files[stored.id] = stored
        return JSONResponse(stored.to_json())

    def _file(self, fid: str) -> FakeFile:
        if fid not in self.fake.files:
            raise FakeAPIError(404, f"No such File object: {fid}", param="id")
        return self.fake.files[fid]

    async def get_file(self, request: Request):
        await self.fake.begin(request)
        return JSONResponse(self._file(request.path_params["fid"]).to_json())

    async def delete_file(self, request: Request):
        await self.fake.begin(request)
        gone = self.fake.files.pop(self._file(request.path_params["fid"]).id)
        return JSONResponse({"id": gone.id, "object": "file", "deleted": True})

    # --- jobs ----------------------------------------------------------------------
    async def create_job(self, request: Request):
        body = await self.fake.begin(request)   # checked against the SDK's JobCreateParams
        refusal = self.fake.ft_refuse_create
        if refusal == "training_not_available":
            raise FakeAPIError(403, "Fine-tuning is no longer available to new jobs for this organization. "
                                    "Existing fine-tuned models remain available until their base model "
                                    "is retired.", code="training_not_available")
        if refusal == "quota":
            raise FakeAPIError(429, "You exceeded your current quota, please check your plan and billing details.",
                               type_="insufficient_quota", code="insufficient_quota",
                               headers={"retry-after-ms": str(self.fake.retry_after_ms)})
        model = body["model"]
        if model not in FINE_TUNABLE and not model.startswith("ft:"):
            raise FakeAPIError(400, f"Model {model} is not available for fine-tuning or does not exist.",
                               code="model_not_available", param="model")
        training = self._job_file(body["training_file"], "training_file")
        validation = body.get("validation_file")
        if validation:
            self._job_file(validation, "validation_file")
        hp = _hyperparameters(body)
        n_train = check_chat_jsonl(training.data)
        now = int(time.time())
        job = FakeJob(self.fake.new_id("ftjob"), model, training.id, validation, body.get("suffix"),
                      body.get("seed") if body.get("seed") is not None else 42, hp, now, time.monotonic(),
                      n_train, len(training.data.split()))
        self.fake.jobs[job.id] = job
        self._advance(job)
        return JSONResponse(job.to_json())

    def _job_file(self, fid: str, param: str) -> FakeFile:
        found = self.fake.files.get(fid)
        if found is None:
            raise FakeAPIError(400, f"invalid {param}: {fid}", param=param)
        if found.purpose != "fine-tune":
            raise FakeAPIError(400, f"File {fid} was not uploaded with purpose 'fine-tune'.", param=param)
        return found

    def _job(self, jid: str) -> FakeJob:
        job = self.fake.jobs.get(jid)
        if job is None:
            raise FakeAPIError(404, f"Could not find fine-tune: {jid}", param="fine_tune_id")
        self._advance(job)
        return job

    async def list_jobs(self, request: Request):
        await self.fake.begin(request)
        jobs = sorted(self.fake.jobs.values(), key=lambda j: (j.created_at, j.started), reverse=True)
        for job in jobs:
            self._advance(job)
        return JSONResponse(_page([j.to_json() for j in jobs], request, 20))

    async def get_job(self, request: Request):
        await self.fake.begin(request)
        return JSONResponse(self._job(request.path_params["jid"]).to_json())

    async def cancel_job(self, request: Request):
        await self.fake.begin(request)
        job = self._job(request.path_params["jid"])
        if job.status in ("succeeded", "failed", "cancelled"):
            raise FakeAPIError(400, f"Job has already completed: {job.id}", param="fine_tuning_job_id")
        job.status, job.finished_at = "cancelled", int(time.time())
        self._event(job, "Fine-tuning job cancelled")
        return JSONResponse(job.to_json())

    async def list_events(self, request: Request):
        await self.fake.begin(request)
        job = self._job(request.path_params["jid"])
        return JSONResponse(_page(job.events[::-1], request, 20))

    async def list_checkpoints(self, request: Request):
        await self.fake.begin(request)
        job = self._job(request.path_params["jid"])
        return JSONResponse(_page(job.checkpoints[::-1], request, 10))

    # --- the clock -----------------------------------------------------------------
    def _event(self, job: FakeJob, message: str, level: str = "info", data: dict | None = None,
               kind: str = "message") -> None:
        job.events.append({"object": "fine_tuning.job.event", "id": self.fake.new_id("ftevent"),
                           "created_at": int(time.time()), "level": level, "message": message,
                           "data": data or {}, "type": kind})

    def _advance(self, job: FakeJob) -> None:
        """Play the job's life forward to now, tick by tick (each tick once)."""
        now_tick = int((time.monotonic() - job.started) / max(self.fake.ft_step_s, 1e-6))
        while job.ticks_done < now_tick and job.status not in ("succeeded", "failed", "cancelled"):
            job.ticks_done += 1
            self._tick(job, job.ticks_done)

    def _tick(self, job: FakeJob, tick: int) -> None:
        running_from = VALIDATING_TICKS + QUEUED_TICKS
        if tick == 0:
            self._event(job, "Created fine-tuning job")
            self._event(job, f"Validating training file: {job.training_file}"
                        + (f" and validation file: {job.validation_file}" if job.validation_file else ""))
        elif tick == VALIDATING_TICKS:
            if job.n_train < MIN_EXAMPLES:
                job.status, job.finished_at = "failed", int(time.time())
                job.error = {"code": "invalid_n_examples", "param": "training_file",
                             "message": f"Training file has {job.n_train} example(s), but must have at least "
                                        f"{MIN_EXAMPLES} examples"}
                self._event(job, job.error["message"], level="error")
                return
            job.status = "queued"
            self._event(job, "Files validated, moving job to queued state")
        elif tick == running_from:
            job.status = "running"
            self._event(job, "Fine-tuning job started")
        elif tick > running_from:
            self._train_step(job, tick - running_from)

    def _train_step(self, job: FakeJob, step: int) -> None:
        total = job.total_steps
        loss = round(2.5 * 0.9 ** step + 0.1, 4)
        if step % self.fake.ft_metrics_every == 0 or step == total:
            data = {"step": step, "train_loss": loss, "total_steps": total,
                    "train_mean_token_accuracy": round(min(0.99, 0.4 + step / (total * 2)), 4)}
            text = f"Step {step}/{total}: training loss={loss:.2f}"
            if job.validation_file:
                data.update(valid_loss=round(loss * 1.1, 4),
                            valid_mean_token_accuracy=data["train_mean_token_accuracy"])
                text += f", validation loss={loss * 1.1:.2f}"
            self._event(job, text, data=data, kind="metrics")
        if step % job.steps_per_epoch == 0:
            name = self._model_name(job)
            metrics = {"step": float(step), "train_loss": loss, "train_mean_token_accuracy": 0.9}
            if job.validation_file:
                metrics.update(valid_loss=round(loss * 1.1, 4), full_valid_loss=round(loss * 1.1, 4))
            job.checkpoints.append({"object": "fine_tuning.job.checkpoint", "id": self.fake.new_id("ftckpt"),
                                    "created_at": int(time.time()), "fine_tuning_job_id": job.id,
                                    "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{step}",
                                    "step_number": step, "metrics": metrics})
            self._event(job, f"Checkpoint created at step {step}")
        if step >= total:
            job.fine_tuned_model = self._model_name(job)
            results = FakeFile(self.fake.new_id("file"), "step_metrics.csv", "fine-tune-results",
                               b"step,train_loss\n", int(time.time()))
            self.fake.files[results.id] = results
            job.result_files = [results.id]
            job.trained_tokens = job.train_words * job.hyperparameters["n_epochs"]
            job.status, job.finished_at = "succeeded", int(time.time())
            self._event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
            self._event(job, "The job has successfully completed")

    @staticmethod
    def _model_name(job: FakeJob) -> str:
        return f"ft:{job.model}:org-fake:{job.suffix or ''}:{job.id[-8:]}"


def _hyperparameters(body: dict) -> dict:
    """The job's hyperparameters with "auto" resolved, refused where OpenAI's spec refuses them.

    OpenAI's OpenAPI document bounds these (n_epochs 1-50, batch_size 1-256, learning rate
    multiplier > 0, suffix 1-64 characters, seed 0-2147483647); the SDK's TypedDicts do not,
    so the fake checks them here.
    """
    method = body.get("method") or {}
    if method and method.get("type") != "supervised":
        raise FakeAPIError(400, "Only the supervised method is offered by this fake.", param="method.type")
    given = dict(((method.get("supervised") or {}).get("hyperparameters")) or body.get("hyperparameters") or {})
    suffix = body.get("suffix")
    if suffix is not None and not 1 <= len(suffix) <= 64:
        raise FakeAPIError(400, "Invalid 'suffix': string must be 1 to 64 characters long.", param="suffix",
                           code="invalid_value")
    seed = body.get("seed")
    if seed is not None and not 0 <= seed <= 2_147_483_647:
        raise FakeAPIError(400, "Invalid 'seed': must be between 0 and 2147483647.", param="seed",
                           code="invalid_value")
    bounds = {"n_epochs": (1, 50, 3), "batch_size": (1, 256, 1), "learning_rate_multiplier": (1e-9, None, 1.8)}
    resolved = {}
    for name, (low, high, auto) in bounds.items():
        value = given.get(name, "auto")
        if value == "auto":
            value = auto
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < low \
                or (high is not None and value > high):
            raise FakeAPIError(400, f"Invalid 'method.supervised.hyperparameters.{name}': {value!r} is out of range.",
                               param=f"method.supervised.hyperparameters.{name}", code="invalid_value")
        resolved[name] = value
    return resolved
