"""Playground: try any model or assistant, compare two to four side by side on one message,
and evaluate them on held-out data."""
import streamlit as st

from components import playground as pg
from components import session
from components.evaluation import new_evaluation, saved_runs
from components.layout import shared_sidebar
from components.safe_text import plain
from studio.playground import MAX_PANES

shared_sidebar()
st.title("Playground")
st.caption("Send one message to several models or assistants at once and compare the replies; then "
           "evaluate them on a held-out set.")
providers, not_ready = pg.available_providers()
choices, notes = pg.model_choices(providers)
assistants = {a.id: a for a in session.store().list_assistants(session.actor(), everyone=session.is_admin())}

compare_tab, evaluate_tab = st.tabs(["Compare", "Evaluate"])
with compare_tab:
    top = st.columns([2, 2, 2, 3])
    pg.pane_count()
    top[0].number_input("Panes", 1, MAX_PANES, key=pg.COUNT)
    top[1].button("Tutorial preset", on_click=pg.tutorial_preset, args=(assistants, choices),
                  help="The prompted assistant (few-shot), the knowledge assistant and your newest "
                       "fine-tuned model, side by side.")
    if missing := st.session_state.pop(pg.PRESET_MISSING, None):
        st.info("For the full preset, make " + "; ".join(missing) + ".")
    top[2].button("Clear conversations", on_click=pg.clear_conversations)
    for name, why in not_ready.items():
        st.caption(f"{plain(name)}: {plain(why)}")
    for note in notes:
        st.caption(plain(note))
    areas, panes, configurations = [], [], []
    for i, column in enumerate(st.columns(st.session_state[pg.COUNT], border=True)):
        with column:
            config = pg.pane_settings(i, providers, choices, assistants)
            if config is not None:
                configurations.append(config)
                panes.append(pg.pane_for(i, config, assistants))
                pg.show_pane(i, panes[-1])
            areas.append(st.container())
    text = st.chat_input("Message every pane…", disabled=len(panes) != st.session_state[pg.COUNT])
    if text:
        pg.send(panes, providers, text, areas)

with evaluate_tab:
    new_evaluation(configurations)
    st.divider()
    st.subheader("Saved runs")
    saved_runs()
