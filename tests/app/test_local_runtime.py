"""The chat page when the embedded model's fast runtime is not available: the reply still comes
(through transformers) and the Provider panel says why replies are slower."""
import os
from pathlib import Path

import pytest

from studio import fast_model, local_model
from studio.accounts import OPERATOR
from tests.app.conftest import accounts, login, new_app

WEIGHTS = local_model.cache_dir(Path(os.environ["STUDIO_MODEL_CACHE"]))


@pytest.fixture
def no_fast_runtime(workspace, tmp_path, monkeypatch):
    """A model folder sharing the cached weights, on a machine where onnxruntime-genai is missing."""
    local_model.get_runtime(Path(os.environ["STUDIO_MODEL_CACHE"]))   # the shared weights exist
    models = tmp_path / "models"
    models.mkdir()
    (models / WEIGHTS.name).symlink_to(WEIGHTS, target_is_directory=True)
    monkeypatch.setenv("STUDIO_MODEL_CACHE", str(models))
    monkeypatch.setattr(fast_model, "missing_packages", lambda: ["onnxruntime-genai"])
    yield models
    for key in [k for k in local_model._runtimes if k[0] == str(models.resolve())]:
        del local_model._runtimes[key]
    local_model._loaded.pop(str(models.resolve()), None)


def test_without_the_fast_runtime_the_reply_comes_and_the_page_says_why(no_fast_runtime, workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "correct-horse")
    at.chat_input[0].set_value("Loved the video!")
    at = at.run()
    assert not at.exception, at.exception
    assert at.chat_message[1].markdown[-1].value.strip()          # the reply came anyway
    notes = [c.value for c in at.caption if "slower built-in runtime" in c.value]
    assert len(notes) == 1 and "onnxruntime-genai is not installed" in notes[0]   # in the Provider panel
    at = at.run()
    assert any("slower built-in runtime" in c.value for c in at.caption)         # on every later run too
