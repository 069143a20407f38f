"""One redact for logs and messages: known keys and the shapes of credentials go, names and paths stay."""
import pytest

from components import errors
from studio.providers import openai_errors
from studio.providers.compatible import CompatibleProvider
from studio.redact import redact, remember_secret


@pytest.mark.parametrize("text, secret", [
    ("database on fire near sk-live-0123456789abcdef", "sk-live-0123456789abcdef"),
    ("Incorrect API key provided: sk-proj-ab***yz. You can find your key", "sk-proj-ab***yz"),
    ("Invalid API Key gsk_4f9QkT2mWb8XzR1cLp6YvN3d for Groq", "gsk_4f9QkT2mWb8XzR1cLp6YvN3d"),
    ("token hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345 refused", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
    ("signature 3f2a9c7e1b4d6a8f0c2e4b6d8a0c2e4f9a8b7c6d", "3f2a9c7e1b4d6a8f0c2e4b6d8a0c2e4f9a8b7c6d"),
    ("Google key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY rejected", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("GET https://ada:hunter2-horse@llm.internal:8443/v1/models", "ada:hunter2-horse"),
    ("postgresql+psycopg://studio:S3cret-pw@db:5432/studio failed", "studio:S3cret-pw"),
    ("headers {'Authorization': 'Bearer abc.def-ghi_jkl'}", "abc.def-ghi_jkl"),
    ("GET /v1/models?api_key=plainpass99&limit=5", "plainpass99"),
    ('body {"model": "x", "password": "correct horse"}', "horse"),
    ("connect(user='ada', password='pw 1')", "pw 1"),
    ("key-1a2b3c4d5e6f7a8b in the header", "key-1a2b3c4d5e6f7a8b"),
])
def test_the_shapes_of_credentials_are_removed(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "***" in cleaned


@pytest.mark.parametrize("text", [
    'File "/work/main/.venv/lib/python3.11/site-packages/streamlit/runtime/scriptrunner/exec_code.py", line 129',
    "def test_a_thread_deleted_in_another_tab_stays_deleted_when_this_tab_sends_or_retries(store):",
    "describe_error(exc, base_url=base_url, key_hint=key_hint, token_count_estimate=3)",
    "OpenAI request req_0123456789abcdef0123456789abcdef failed for thread_0123456789abcdef",
    "a task-force with risk-free numbers; password: str",
    "https://api.openai.com/v1/responses",
])
def test_what_a_traceback_needs_to_be_read_stays(text):
    assert redact(text) == text


def test_a_key_of_no_particular_shape_is_removed_when_it_is_known():
    key = "letmein-please-twenty"   # a compatible server's own key: no prefix, short, not random
    assert redact(f"auth failed for {key}") == f"auth failed for {key}"
    assert redact(f"auth failed for {key}", [key]) == "auth failed for ***"
    CompatibleProvider(base_url="http://127.0.0.1:9/v1", api_key=key)   # a provider made with it
    assert redact(f"auth failed for {key} (again)") == "auth failed for *** (again)"


def test_a_remembered_key_too_short_to_be_safe_everywhere_is_only_removed_when_passed_in():
    remember_secret("abc1234")   # 7 characters: blanking it in every text would hide ordinary words
    assert redact("abc1234") == "abc1234" and redact("x abc1234", ["abc1234"]) == "x ***"


def test_the_log_and_the_provider_messages_use_the_same_redact():
    assert errors.redact is redact and openai_errors.redact is redact
