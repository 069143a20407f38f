"""Assistant specs: few-shot compilation, the seeded demo assistant, and assistant files."""
from __future__ import annotations

import difflib
import functools
import json
import sys
import re
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from studio.types import AssistantSpec, FewShotExample, new_id

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
DEMO_ASSISTANT_FILE = SAMPLES_DIR / "demo_assistant.json"
NAME_LENGTH = 200   # the longest assistant name the store keeps (its column width)


def compile_instructions(spec: AssistantSpec) -> str:
    """The system prompt sent to the model: instructions, then the few-shot examples.

    Examples are written into the prompt the way the course does it, e.g.
    "Here are examples of how you reply: Viewer comment: ... Reply: ...".
    """
    parts = [spec.instructions.strip()] if spec.instructions.strip() else []
    examples = [e for e in spec.examples if e.prompt.strip() and e.response.strip()]
    if examples:
        lines = [f"Here are examples of a {spec.example_label_prompt.lower()} and how you reply:"]
        for ex in examples:
            lines.append("")
            lines.append(f"{spec.example_label_prompt}: {ex.prompt.strip()}")
            lines.append(f"{spec.example_label_response}: {ex.response.strip()}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def spec_to_dict(spec: AssistantSpec) -> dict:
    """The assistant as plain data (for JSON and the store)."""
    from dataclasses import asdict
    return asdict(spec)


def spec_from_dict(data: dict) -> AssistantSpec:
    """The assistant `spec_to_dict` gave; keys it does not know are dropped."""
    data = dict(data)
    data["examples"] = [FewShotExample(**e) for e in data.get("examples", [])]
    if data.get("knowledge_base") and "knowledge_bases" not in data:   # stored before several were allowed
        data["knowledge_bases"] = [data["knowledge_base"]]
    known = AssistantSpec.__dataclass_fields__
    return AssistantSpec(**{k: v for k, v in data.items() if k in known})


def load_demo_assistant(owner: str) -> AssistantSpec:
    """The 'comment responder' persona shipped in data/samples/, as a fresh spec for `owner`."""
    data = json.loads(DEMO_ASSISTANT_FILE.read_text(encoding="utf-8"))
    data.pop("id", None)
    spec = spec_from_dict(data)
    spec.owner = owner
    return spec


# --- assistant files: one spec as a JSON file, to hand to another workspace --------
#
# The format is data/samples/demo_assistant.json: every field of the spec but the
# workspace's own ids. Import never takes an id, owner or knowledge base from a file:
# the importer owns the new assistant.

DESCRIPTION_LENGTH = 1_000
INSTRUCTIONS_LENGTH = 20_000
EXAMPLE_LENGTH = 5_000        # each side of a few-shot example
MAX_EXAMPLES = 100
MAX_TOOLS = 50                # a file names each tool once; room for repeats, not for a flood
MAX_PROBLEMS = 20             # shown per file; the rest are counted ("... and 5 more")
SHOWN_LENGTH = 60             # of a value quoted back in a problem
LABEL_LENGTH = 60
MODEL_LENGTH = 200
MAX_FILE_BYTES = 5_000_000
FILE_FIELDS = ("name", "description", "instructions", "examples", "provider", "model", "tools",
               "example_label_prompt", "example_label_response")
# These belong to the workspace that wrote the file ("knowledge_base": files written before several
# knowledge bases could be attached).
IGNORED_FIELDS = ("id", "owner", "knowledge_base", "knowledge_bases")
CODE_INTERPRETER = "code_interpreter"


class AssistantFileError(ValueError):
    """A file that is not a valid assistant; `problems` says what is wrong, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("This is not a valid assistant file:\n" + "\n".join(f"- {p}" for p in problems))


class AssistantClash(ValueError):
    """The importer already has an assistant with this name."""

    def __init__(self, existing: AssistantSpec):
        self.existing = existing
        super().__init__(f"An assistant named {existing.name!r} already exists.")


def known_tools() -> list[str]:
    """Tool names an assistant may switch on: the built-in functions and the hosted code interpreter."""
    from studio.tools import BUILTIN_TOOLS   # imported late: the tools package is heavier than this module
    return [*BUILTIN_TOOLS, CODE_INTERPRETER]


def _problem(message: str) -> PydanticCustomError:
    # A custom error keeps pydantic from prefixing "Value error, " to the message.
    return PydanticCustomError("assistant_file", message)


def _no_control_characters(value: str, *, multiline: bool) -> str:
    allowed = "\n\r\t" if multiline else ""
    if "\x00" in value:
        raise _problem("contains a NUL character")
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise _problem("contains control characters" + ("" if multiline else " (it must be one line)"))
    return value


def _text(max_length: int, *, multiline: bool = False):
    return Annotated[str, Field(max_length=max_length),
                     AfterValidator(lambda v: _no_control_characters(v, multiline=multiline))]


def _shown(value: str) -> str:
    # A hostile file may hold a megabyte-long name; quote only its start.
    return repr(value if len(value) <= SHOWN_LENGTH else value[:SHOWN_LENGTH] + "…")


@functools.lru_cache(maxsize=256)
def _close_match(name: str, known: tuple[str, ...]) -> str | None:
    # Cached: a file repeating one misspelt name pays for difflib once. A long name is no typo.
    if len(name) > SHOWN_LENGTH:
        return None
    hint = difflib.get_close_matches(name, known, n=1)
    return hint[0] if hint else None


def _known_tool(name: str) -> str:
    known = known_tools()
    if name not in known:
        hint = _close_match(name, tuple(known))
        raise _problem(f"unknown tool {_shown(name)}" + (f" (did you mean {hint!r}?)" if hint else "")
                       + f"; the tools are {', '.join(known)}")
    return name


class _ExampleModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    prompt: _text(EXAMPLE_LENGTH, multiline=True)
    response: _text(EXAMPLE_LENGTH, multiline=True)

    @field_validator("prompt", "response")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise _problem("is empty")
        return value


class _AssistantModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: _text(NAME_LENGTH)
    description: _text(DESCRIPTION_LENGTH, multiline=True) = ""
    instructions: _text(INSTRUCTIONS_LENGTH, multiline=True) = ""
    examples: Annotated[list[_ExampleModel], Field(max_length=MAX_EXAMPLES)] = []
    provider: str = ""
    model: _text(MODEL_LENGTH) = ""
    tools: Annotated[list[Annotated[str, AfterValidator(_known_tool)]], Field(max_length=MAX_TOOLS),
                     AfterValidator(lambda v: list(dict.fromkeys(v)))] = []   # a tool named twice is one tool
    example_label_prompt: _text(LABEL_LENGTH) = AssistantSpec.example_label_prompt
    example_label_response: _text(LABEL_LENGTH) = AssistantSpec.example_label_response

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise _problem("is empty: give the assistant a name")
        return value.strip()

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        from studio.settings import PROVIDERS
        if value not in ("", *PROVIDERS):
            raise _problem(f"unknown provider {_shown(value)}: use {', '.join(PROVIDERS)}, "
                           "or \"\" for the workspace default")
        return value

_JSON_TYPES = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
               float: "a number", type(None): "null"}


def _where(loc: tuple) -> str:
    parts: list[str] = []
    for step in loc:
        if isinstance(step, int):
            parts[-1] = f"{parts[-1]} #{step + 1}"   # people count examples from 1
        else:
            parts.append(str(step))
    return " → ".join(parts) or "the file"


def _describe(error: dict) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    got = _JSON_TYPES.get(type(error.get("input")), "something else")
    if kind == "missing":
        return f"{_where(loc)}: is missing"
    if kind == "extra_forbidden":
        field = str(loc[-1])
        known = tuple(_ExampleModel.model_fields if len(loc) > 1 else FILE_FIELDS)
        hint = _close_match(field, known)
        suggestion = f" (did you mean {hint!r}?)" if hint else f" (known fields: {', '.join(known)})"
        if len(loc) > 1:
            return f"{_where(loc[:-1])} → {_shown(field)}: is not a field of a few-shot example{suggestion}"
        return f"{_shown(field)}: is not a field of an assistant{suggestion}"
    if kind == "string_type":
        return f"{_where(loc)}: must be text, not {got}"
    if kind == "list_type":
        return f"{_where(loc)}: must be a list, not {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if len(loc) == 2 and loc[0] == "examples":
            return (f"{_where(loc)}: must be a pair of texts written "
                    f"{{\"prompt\": \"...\", \"response\": \"...\"}}, not {got}")
        return f"{_where(loc)}: must be an object, not {got}"
    if kind == "string_too_long":
        return f"{_where(loc)}: is too long ({len(error['input']):,} characters; at most {ctx['max_length']:,})"
    if kind == "too_long":
        return f"{_where(loc)}: has too many items ({ctx.get('actual_length', '?')}; at most {ctx['max_length']})"
    return f"{_where(loc)}: {error['msg']}"


def _at_most(problems: list[str], total: int | None = None) -> list[str]:
    """The first MAX_PROBLEMS of `problems`, then a count of the rest (of `total`, when only some were described)."""
    more = (len(problems) if total is None else total) - MAX_PROBLEMS
    if more <= 0:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {more:,} more problem{'s' if more > 1 else ''}"]


def _too_many_fields(data: dict) -> list[str]:
    """Counts checked before validation: pydantic reports one error per unknown field, so a
    file with 300,000 of them would cost seconds and a 300,000-line message."""
    unknown = [k for k in data if k not in FILE_FIELDS]
    if len(unknown) > MAX_PROBLEMS:
        return [f"The file has {len(unknown):,} fields that are not fields of an assistant "
                f"(such as {', '.join(_shown(k) for k in unknown[:3])}); the fields are {', '.join(FILE_FIELDS)}"]
    examples = data.get("examples")
    if not isinstance(examples, list) or len(examples) > MAX_EXAMPLES:
        return []   # the model says what is wrong with that, in one error
    crowded = [(n, len(e)) for n, e in enumerate(examples, 1) if isinstance(e, dict) and len(e) > MAX_PROBLEMS]
    return [f"examples #{n}: has {count:,} fields; a few-shot example has two, prompt and response"
            for n, count in crowded]


def _problems(data: dict) -> tuple[AssistantSpec | None, list[str]]:
    data = {k: v for k, v in data.items() if k not in IGNORED_FIELDS}
    if crowded := _too_many_fields(data):
        return None, _at_most(crowded)
    try:
        checked = _AssistantModel.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # Described up to the cap only; the rest are counted.
        described = [_describe(e) for e in errors[:MAX_PROBLEMS]]
        return None, _at_most(described, total=len(errors))
    fields = checked.model_dump()
    fields["examples"] = [FewShotExample(**e) for e in fields["examples"]]
    return AssistantSpec(**fields), []


def spec_problems(spec: AssistantSpec) -> list[str]:
    """What would keep `spec` from being saved to, or read back from, an assistant file (empty: fine)."""
    return _problems(_file_dict(spec))[1]


def _file_dict(spec: AssistantSpec) -> dict:
    data = spec_to_dict(spec)
    return {k: data[k] for k in FILE_FIELDS}


def assistant_file_bytes(spec: AssistantSpec) -> bytes:
    """`spec` as an assistant file (UTF-8 JSON), without the workspace's ids and owner."""
    return (json.dumps(_file_dict(spec), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def assistant_file_name(spec: AssistantSpec) -> str:
    """A file name for the exported spec, e.g. "comment-responder.json"."""
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:60].strip("-")
    return f"{slug or 'assistant'}.json"


def read_assistant_file(raw: bytes, owner: str) -> AssistantSpec:
    """Check an assistant file and return a new spec owned by `owner` (with a fresh id).

    Raises AssistantFileError listing every problem found: not text, too big, not JSON,
    not one object, wrong types, empty or too-long fields, unknown tools or provider, and
    few-shot examples that are not prompt/response pairs (at most MAX_PROBLEMS of them, then
    a count of the rest).
    """
    if len(raw) > MAX_FILE_BYTES:
        raise AssistantFileError([f"The file is too big: an assistant file is at most "
                                  f"{MAX_FILE_BYTES // 1_000_000} MB."])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise AssistantFileError(["This is not a text file: an assistant file is JSON text in UTF-8."])
    if not text.strip():
        raise AssistantFileError(["The file is empty."])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssistantFileError([f"This is not valid JSON: {exc.msg} (line {exc.lineno}, "
                                  f"column {exc.colno})."]) from None
    except RecursionError:
        raise AssistantFileError(["The JSON is nested too deeply to be an assistant."]) from None
    except ValueError:   # Python refuses to read an integer of more than 4,300 digits
        raise AssistantFileError([f"The file holds a number with more than {sys.get_int_max_str_digits():,} "
                                  "digits; an assistant file has no such numbers."]) from None
    if isinstance(data, list):
        raise AssistantFileError(["The file holds a list, not one assistant: "
                                  "an assistant file is one JSON object, {\"name\": ..., ...}."])
    if not isinstance(data, dict):
        raise AssistantFileError([f"The file holds {_JSON_TYPES.get(type(data), 'a value')}, not an "
                                  "assistant: an assistant file is one JSON object, {\"name\": ..., ...}."])
    spec, problems = _problems(data)
    if problems:
        raise AssistantFileError(problems)
    spec.owner = owner
    return spec


def same_name(a: str, b: str) -> bool:
    """Whether two assistant names are the same, ignoring case and surrounding spaces."""
    return a.strip().casefold() == b.strip().casefold()


def free_name(name: str, taken: list[str]) -> str:
    """`name`, or "name (2)", "name (3)", ... : the first that none of `taken` has."""
    n = 1
    candidate = name
    while any(same_name(candidate, t) for t in taken):
        n += 1
        suffix = f" ({n})"
        candidate = name[: NAME_LENGTH - len(suffix)] + suffix
    return candidate


def import_assistant(store, spec: AssistantSpec, actor, on_clash: str = "fail") -> AssistantSpec:
    """Save a spec read from a file as the acting user's (`actor`, a store Actor); returns what was saved.

    When the actor already has an assistant with the same name (case aside), `on_clash`
    decides: "fail" raises AssistantClash, "replace" writes the file's spec over that
    assistant (it keeps its id, so its threads go on with the new spec), "keep_both" saves
    the import under a free name such as "Name (2)".
    """
    if on_clash not in ("fail", "replace", "keep_both"):
        raise ValueError(f"on_clash must be fail, replace or keep_both, not {on_clash!r}")
    mine = store.list_assistants(actor)
    existing = next((a for a in mine if same_name(a.name, spec.name)), None)
    fresh = replace(spec, owner=actor.name, id=new_id("asst"), knowledge_bases=[])
    if existing is not None:
        if on_clash == "fail":
            raise AssistantClash(existing)
        if on_clash == "replace":
            fresh = replace(fresh, id=existing.id, knowledge_bases=existing.knowledge_bases)
        else:
            fresh = replace(fresh, name=free_name(spec.name, [a.name for a in mine]))
    return store.save_assistant(fresh, actor)
