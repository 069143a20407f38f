"""The assistant editor: every field of an AssistantSpec."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from components.safe_text import plain
from studio.assistants import NAME_LENGTH, compile_instructions, spec_problems
from studio.finetune.jobs import LOCAL_BASE
from studio.providers import LABELS
from studio.settings import PROVIDERS
from studio.tools import BUILTIN_TOOLS
from studio.types import AssistantSpec, FewShotExample

TOOL_CHOICES = [*BUILTIN_TOOLS, "code_interpreter"]


def _tool_label(name: str) -> str:
    if name == "code_interpreter":
        return "code_interpreter (OpenAI only)"
    return name


def assistant_form(spec: AssistantSpec, models: dict[str, str] | None = None,
                   bases: dict[str, str] | None = None) -> AssistantSpec | None:
    """Draw the editor for `spec`; return the edited copy when Save is pressed.

    `models`: model ids to offer (e.g. the user's fine-tuned ones) -> how to describe them; any
    other id can still be typed. `bases`: the user's knowledge bases, id -> name."""
    key = spec.id
    with st.form(f"assistant_{key}"):
        name = st.text_input("Name", value=spec.name, max_chars=NAME_LENGTH)
        description = st.text_input("Description", value=spec.description)
        instructions = st.text_area("Instructions", value=spec.instructions, height=160,
                                    help="The system prompt: who the assistant is and how it answers.")
        st.markdown("**Few-shot examples** — pairs compiled into the instructions")
        labels = st.columns(2)
        prompt_label = labels[0].text_input("Label for the prompt", value=spec.example_label_prompt)
        response_label = labels[1].text_input("Label for the reply", value=spec.example_label_response)
        table = pd.DataFrame([{"prompt": e.prompt, "response": e.response} for e in spec.examples],
                             columns=["prompt", "response"])
        edited = st.data_editor(table, num_rows="dynamic", width="stretch",
                                key=f"examples_{key}",
                                column_config={"prompt": st.column_config.TextColumn("Prompt", width="large"),
                                               "response": st.column_config.TextColumn("Response", width="large")})
        cols = st.columns(2)
        choices = ["", *PROVIDERS]
        provider = cols[0].selectbox("Provider", choices, index=choices.index(spec.provider or ""),
                                     format_func=lambda p: LABELS.get(p, "Session default"))
        model = cols[1].text_input("Model", value=spec.model, placeholder="provider default")
        if models:   # the user's fine-tuned models, to pick instead of typing their long ids
            choices = ["", *models]
            picked = st.selectbox("Or one of your fine-tuned models", choices, key=f"tuned_{key}",
                                  index=choices.index(spec.model) if spec.model in models else 0,
                                  format_func=lambda m: models.get(m, "(the model typed above)"))
            model = picked or model
        tools = st.multiselect("Tools", TOOL_CHOICES, default=[t for t in spec.tools if t in TOOL_CHOICES],
                               format_func=_tool_label,
                               help="Function tools run on OpenAI and compatible servers; "
                                    "the embedded model cannot call tools.")
        bases = dict(bases or {})
        for gone in spec.knowledge_bases:   # attached, then deleted (or not readable): show it to remove it
            bases.setdefault(gone, "(deleted knowledge base)")
        knowledge = st.multiselect("Knowledge bases", list(bases), default=spec.knowledge_bases,
                                   format_func=lambda i: bases[i], key=f"knowledge_{key}",
                                   placeholder="none" if bases else "none yet: create one on the Knowledge page",
                                   help="Each turn searches these documents and gives the best passages to "
                                        "the model, which cites them. On OpenAI, file search reads at most "
                                        "two knowledge bases per turn (the first two).")
        saved = st.form_submit_button("Save", type="primary")
    examples = [FewShotExample(str(r.prompt), str(r.response))
                for r in edited.fillna("").itertuples() if str(r.prompt).strip() or str(r.response).strip()]
    model = model.strip()
    if model.startswith(f"{LOCAL_BASE}:ft:"):   # fine-tuned here: it runs on the embedded model only
        provider = "local"
    edited_spec = AssistantSpec(
        id=spec.id, owner=spec.owner, name=name.strip(), description=description.strip(),
        instructions=instructions, examples=examples, provider=provider, model=model,
        tools=tools, knowledge_bases=knowledge,
        example_label_prompt=prompt_label.strip() or "Prompt",
        example_label_response=response_label.strip() or "Reply")
    with st.expander("What the model receives (compiled instructions)"):
        st.code(compile_instructions(edited_spec) or "(empty)", language="text")
    if not saved:
        return None
    if not edited_spec.name:
        st.error("Give the assistant a name before saving.")
        return None
    half = [e for e in examples if not (e.prompt.strip() and e.response.strip())]
    if half:
        st.error("Each few-shot example needs both a prompt and a response "
                 f"({len(half)} row(s) have only one).")
        return None
    # The rules an imported file must meet, so that whatever is saved can be exported and imported.
    if problems := spec_problems(edited_spec):
        st.error("Not saved yet:\n" + "\n".join(f"- {plain(p)}" for p in problems))
        return None
    return edited_spec
