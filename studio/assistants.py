"""Assistant specs: few-shot compilation and the seeded demo assistant."""
from __future__ import annotations

import json
from pathlib import Path

from studio.types import AssistantSpec, FewShotExample

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
DEMO_ASSISTANT_FILE = SAMPLES_DIR / "demo_assistant.json"


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
    from dataclasses import asdict
    return asdict(spec)


def spec_from_dict(data: dict) -> AssistantSpec:
    data = dict(data)
    data["examples"] = [FewShotExample(**e) for e in data.get("examples", [])]
    known = AssistantSpec.__dataclass_fields__
    return AssistantSpec(**{k: v for k, v in data.items() if k in known})


def load_demo_assistant(owner: str) -> AssistantSpec:
    """The 'comment responder' persona shipped in data/samples/, as a fresh spec for `owner`."""
    data = json.loads(DEMO_ASSISTANT_FILE.read_text(encoding="utf-8"))
    data.pop("id", None)
    spec = spec_from_dict(data)
    spec.owner = owner
    return spec
