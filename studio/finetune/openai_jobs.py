"""Fine-tuning on OpenAI: upload a saved dataset version, create the job, follow it, cancel it.

Every job is a `FineTuneJob` in the JobStore first, so a refusal or a failure is kept with
OpenAI's code and message verbatim and the page can explain it after a reload. Refusals the
caller can offer local training for carry `suggest_local=True`: 403 `training_not_available`
(no new jobs from this organisation; from anyone after 2027-01-06), the job error
`invalid_n_examples` (fewer than 10 examples) and quota errors.

Request shapes checked by hand against OpenAI's OpenAPI document (CreateFineTuningJobRequest,
CreateFileRequest). The document bounds what the SDK's TypedDicts leave open, so
`hyperparameters()` and `launch()` check them here: suffix 1-64 characters, seed
0-2147483647, n_epochs 1-50, batch_size 1-256, learning_rate_multiplier > 0. It leaves a
metrics event's `data` an untyped object; OpenAI fills it with step, total_steps,
train_loss, valid_loss (and full_valid_loss, *_mean_token_accuracy), read by `_metric`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone

import openai

from studio.datasets.export import openai_jsonl
from studio.datasets.types import TRAIN, VALIDATION, DatasetVersion
from studio.finetune.jobs import FAILED, PREPARING, SUCCEEDED, FineTuneJob, JobEvent, JobStore, StepMetric
from studio.providers.base import ProviderError
from studio.providers.openai_errors import _server_message, describe_error
from studio.providers.openai_provider import OpenAIProvider
from studio.redact import redact
from studio.store import Actor

log = logging.getLogger(__name__)

MIN_EXAMPLES = 10            # fewer: OpenAI fails the job with invalid_n_examples
RETIRING_SOON_DAYS = 60
# The base models OpenAI still fine-tunes (gpt-4o / gpt-4.1 snapshots) and earlier fine-tunes.
FINE_TUNABLE = re.compile(r"^(gpt-4o|gpt-4o-mini|gpt-4\.1|gpt-4\.1-mini)(-\d{4}-\d{2}-\d{2})?$|^ft:")
SUGGEST_LOCAL = frozenset({"training_not_available", "invalid_n_examples", "insufficient_quota",
                           "quota_exceeded", "billing_hard_limit_reached"})
HYPERPARAMETER_BOUNDS = {"n_epochs": (1, 50), "batch_size": (1, 256), "learning_rate_multiplier": (0, None)}
EVENTS_KEPT = 200            # stored events looked at to tell where the new ones end


class FineTuneError(ProviderError):
    """A fine-tuning failure worded for the user. `code` and `openai_message`: OpenAI's own,
    verbatim (secrets removed); `suggest_local`: training locally would get round it."""

    def __init__(self, message: str, code: str = "", openai_message: str = "", status: int | None = None,
                 retryable: bool = False, suggest_local: bool = False, job_id: str = ""):
        super().__init__(message)
        self.message, self.code, self.openai_message, self.status = message, code, openai_message, status
        self.retryable, self.suggest_local, self.job_id = retryable, suggest_local, job_id


@dataclass(frozen=True)
class FineTunableModel:
    """A base model the account may fine-tune, with when OpenAI retires it."""
    id: str
    shutdown_date: date | None = None
    retiring_soon: bool = False      # shuts down within RETIRING_SOON_DAYS
    days_left: int | None = None


def fine_tune_error(exc: BaseException, *, base_url: str, secrets: tuple[str, ...] = (),
                    doing: str = "talk to OpenAI") -> FineTuneError:
    """The FineTuneError for an exception raised by the SDK while `doing` something."""
    event = describe_error(exc, base_url=base_url, secrets=secrets)
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "code", "") or "") or event.code
    said = _server_message(exc, secrets) if isinstance(exc, openai.APIStatusError) else ""
    verbatim = f" OpenAI said ({status} {code}): {said}" if said else ""
    if code == "training_not_available":
        message = (f"OpenAI will not start new fine-tuning jobs for this account.{verbatim} "
                   "Train locally instead: the same dataset trains on the embedded model.")
    elif code in SUGGEST_LOCAL:
        message = (f"OpenAI refused to {doing} for lack of quota or credit.{verbatim} Add credit to the "
                   "API account, or train locally instead.")
    else:
        message = f"Could not {doing}: {event.message}" + (verbatim if said and said not in event.message else "")
    return FineTuneError(message, code, said, status, event.retryable, code in SUGGEST_LOCAL)


def job_failure(job: FineTuneJob) -> FineTuneError | None:
    """What a job that failed on OpenAI's side means for the user (None unless it failed)."""
    if job.status != FAILED:
        return None
    verbatim = f"{job.error_code or 'error'}: {job.error_message or 'no reason given'}"
    if job.error_code == "invalid_n_examples":
        message = (f"OpenAI refused the training data ({verbatim}). It needs at least {MIN_EXAMPLES} "
                   "training examples: add examples, or train locally instead (no minimum there).")
    elif job.error_code in SUGGEST_LOCAL:
        message = f"OpenAI did not run the job ({verbatim}). Train locally instead with the same dataset."
    else:
        message = f"The job failed ({verbatim})."
    return FineTuneError(message, job.error_code, job.error_message, suggest_local=job.error_code in SUGGEST_LOCAL,
                         job_id=job.id)


def hyperparameters(epochs: int | None = None, batch_size: int | None = None,
                    learning_rate_multiplier: float | None = None) -> dict:
    """The supervised hyperparameters to send: each given value, else "auto". Raises
    FineTuneError for values OpenAI's API document refuses."""
    chosen = {"n_epochs": epochs, "batch_size": batch_size, "learning_rate_multiplier": learning_rate_multiplier}
    for name, value in chosen.items():
        low, high = HYPERPARAMETER_BOUNDS[name]
        if value is not None and (value <= low if name == "learning_rate_multiplier" else value < low
                                  or value > high):
            bound = f"above {low}" if high is None else f"from {low} to {high}"
            raise FineTuneError(f"{name} must be {bound} (or left automatic); it is {value}.", "invalid_value")
    return {name: "auto" if value is None else value for name, value in chosen.items()}


class OpenAIFineTuning:
    """OpenAI fine-tuning jobs of the workspace, through an OpenAIProvider's SDK client."""

    def __init__(self, provider: OpenAIProvider, jobs: JobStore):
        self.provider, self.jobs = provider, jobs
        self.client = provider.client

    def _error(self, exc: BaseException, doing: str) -> FineTuneError:
        return fine_tune_error(exc, base_url=self.provider.base_url, secrets=(self.client.api_key,), doing=doing)

    # --- base models ---------------------------------------------------------------
    def base_models(self, today: date | None = None) -> list[FineTunableModel]:
        """The account's fine-tunable models with their shutdown dates; a model that retires
        within 60 days is flagged. Raises ProviderError."""
        today = today or datetime.now(timezone.utc).date()
        found = []
        for model in self.provider.list_models():
            if not FINE_TUNABLE.search(model.id):
                continue
            days = (model.shutdown_date - today).days if model.shutdown_date else None
            soon = days is not None and days <= RETIRING_SOON_DAYS
            found.append(FineTunableModel(model.id, model.shutdown_date, soon, days))
        return found

    # --- launch --------------------------------------------------------------------
    def launch(self, version: DatasetVersion, actor: Actor, model: str, suffix: str = "", seed: int | None = None,
               hyperparameters: dict | None = None, check: bool = True) -> FineTuneJob:
        """Upload the version's train (and validation) JSONL and create the job. The job is
        stored first; a refusal leaves it `failed` with OpenAI's code and message and raises
        FineTuneError (its `job_id` names the stored job). `check`: refuse before uploading
        what OpenAI would fail (fewer than 10 training examples)."""
        prepared = version.prepared
        if prepared is None:
            raise FineTuneError("The dataset version was read without its examples; open it again.")
        train, validation = prepared.split(TRAIN), prepared.split(VALIDATION)
        if check and len(train) < MIN_EXAMPLES:
            raise FineTuneError(f"OpenAI needs at least {MIN_EXAMPLES} training examples; this dataset has "
                                f"{len(train)}. Add examples, or train locally instead (no minimum there).",
                                "invalid_n_examples", suggest_local=True)
        if suffix and len(suffix) > 64:
            raise FineTuneError(f"The suffix can be at most 64 characters; it has {len(suffix)}.", "invalid_value")
        if seed is not None and not 0 <= seed <= 2_147_483_647:
            raise FineTuneError("The seed must be a whole number from 0 to 2147483647.", "invalid_value")
        hp = dict(hyperparameters or {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"})
        job = self.jobs.create(FineTuneJob(id="", owner=actor.name, provider="openai", base_model=model,
                                           dataset_version_id=version.id, suffix=suffix, seed=seed,
                                           hyperparameters=hp, status=PREPARING), actor)
        uploaded: list[str] = []
        doing = "upload the training file"
        try:
            uploaded.append(self._upload("train.jsonl", openai_jsonl(train)))
            if validation:
                doing = "upload the validation file"
                uploaded.append(self._upload("validation.jsonl", openai_jsonl(validation)))
            doing = "create the fine-tuning job"
            options = {"suffix": suffix} if suffix else {}
            if seed is not None:
                options["seed"] = seed
            if validation:
                options["validation_file"] = uploaded[1]
            remote = self.client.fine_tuning.jobs.create(
                model=model, training_file=uploaded[0],
                method={"type": "supervised", "supervised": {"hyperparameters": hp}}, **options)
        except Exception as exc:
            error = self._error(exc, doing)
            for file_id in uploaded:   # nothing left behind on the account for a job that never started
                self._delete_file_quietly(file_id)
            self.jobs.set_status(job.id, FAILED, actor, error.code or "launch_failed",
                                 error.openai_message or error.message)
            error.job_id = job.id
            raise error from None
        self.jobs.add_events(job.id, [JobEvent(_now(), "info", f"Uploaded {len(train)} training and "
                                               f"{len(validation)} validation examples; created {remote.id}.")],
                             actor)
        return self.jobs.update(job.id, actor, status=remote.status, provider_job_id=remote.id,
                                training_file_id=uploaded[0], validation_file_id=uploaded[1] if validation else None)

    def _upload(self, name: str, data: bytes) -> str:
        return self.client.files.create(file=(name, data, "application/jsonl"), purpose="fine-tune").id

    def _delete_file_quietly(self, file_id: str) -> None:
        try:
            self.client.with_options(max_retries=0, timeout=10).files.delete(file_id)
        except Exception as exc:   # the launch's own error is what the user needs
            log.warning("could not delete file %s: %s", file_id, redact(repr(exc), (self.client.api_key,)))

    # --- follow --------------------------------------------------------------------
    def sync(self, job: FineTuneJob, actor: Actor) -> FineTuneJob:
        """Bring the stored job up to date with OpenAI: status, events, metrics, checkpoints,
        trained tokens, the model (registered once the job succeeded), an error. A failed
        poll raises FineTuneError and changes nothing stored."""
        if job.provider != "openai" or not job.provider_job_id:
            return job
        jobs_api = self.client.fine_tuning.jobs
        try:
            remote = jobs_api.retrieve(job.provider_job_id)
            if job.cancel_requested and remote.status not in ("succeeded", "failed", "cancelled"):
                remote = jobs_api.cancel(job.provider_job_id)   # asked for elsewhere (another tab, an admin)
            events = self._new_events(job, actor)
            checkpoints = sorted(jobs_api.checkpoints.list(job.provider_job_id, limit=100),
                                 key=lambda c: c.step_number)
        except Exception as exc:
            raise self._error(exc, "check the fine-tuning job") from None
        self.jobs.add_events(job.id, [JobEvent(_time(e.created_at), e.level, e.message, e.id,
                                               e.data if isinstance(e.data, dict) else None) for e in events], actor)
        n_epochs = _resolved(remote).get("n_epochs")
        self.jobs.add_metrics(job.id, [m for m in (_metric(e, n_epochs) for e in events) if m], actor)
        error = remote.error
        job = self.jobs.update(
            job.id, actor, status=remote.status, trained_tokens=remote.trained_tokens,
            result_model=remote.fine_tuned_model, result_files=list(remote.result_files or []),
            hyperparameters=_resolved(remote) or job.hyperparameters, seed=remote.seed,
            error_code=(error.code or "") if error else "", error_message=(error.message or "") if error else "",
            checkpoints=[{"id": c.id, "step": c.step_number, "model": c.fine_tuned_model_checkpoint,
                          "created_at": c.created_at, "metrics": c.metrics.model_dump(exclude_none=True)}
                         for c in checkpoints])
        if job.status == SUCCEEDED and job.result_model:
            self.jobs.register_model(job)
        return job

    def _new_events(self, job: FineTuneJob, actor: Actor) -> list:
        """OpenAI's events not stored yet, oldest first (its pages run newest first)."""
        known = {e.id for e in self.jobs.list_events(job.id, actor, limit=EVENTS_KEPT)}
        new = []
        page = self.client.fine_tuning.jobs.list_events(job.provider_job_id, limit=100)
        while True:
            fresh = [e for e in page.data if e.id not in known]
            new.extend(fresh)
            if len(fresh) < len(page.data) or not page.has_next_page():
                break
            page = page.get_next_page()
        return new[::-1]

    def cancel(self, job: FineTuneJob, actor: Actor) -> FineTuneJob:
        """Ask OpenAI to stop the job (its owner or an admin); the store keeps the request, so
        a cancel that cannot reach OpenAI now is carried out by the owner's next sync."""
        self.jobs.request_cancel(job.id, actor)
        if job.finished or not job.provider_job_id:
            if not job.finished and actor.name == job.owner:
                job = self.jobs.set_status(job.id, "cancelled", actor)
            return self.jobs.get(job.id, actor) or job
        try:
            remote = self.client.fine_tuning.jobs.cancel(job.provider_job_id)
        except Exception as exc:
            raise self._error(exc, "cancel the fine-tuning job") from None
        if actor.name == job.owner:
            return self.jobs.update(job.id, actor, status=remote.status)
        return self.jobs.get(job.id, actor) or job


def _now() -> datetime:
    # Whole seconds, like OpenAI's event times: our own event sorts before theirs of the same second.
    return datetime.now(timezone.utc).replace(microsecond=0)


def _time(stamp: int | None) -> datetime:
    return datetime.fromtimestamp(stamp, tz=timezone.utc) if stamp else _now()


def _resolved(remote) -> dict:
    """The hyperparameters OpenAI settled on ("auto" replaced by numbers once it has chosen)."""
    method = getattr(remote, "method", None)
    hp = (method.supervised.hyperparameters if method is not None and method.supervised else None) \
        or remote.hyperparameters
    return hp.model_dump(exclude_none=True) if hp is not None else {}


def _metric(event, n_epochs) -> StepMetric | None:
    """The step metrics a `metrics` event carries, if it is one."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type != "metrics" or not isinstance(data.get("step"), (int, float)):
        return None
    step, total = int(data["step"]), data.get("total_steps")
    epoch = step / (total / n_epochs) if isinstance(total, (int, float)) and total and isinstance(n_epochs, int) \
        else None
    valid = data.get("valid_loss", data.get("full_valid_loss"))
    return StepMetric(step, round(epoch, 3) if epoch is not None else None, data.get("train_loss"), valid)
