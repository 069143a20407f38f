"""Fine-tuning, step 1: a CSV of comment/response pairs becomes checked, split training data."""
import streamlit as st

from components.dataset_wizard import dataset_wizard, saved_datasets
from components.finetune_jobs import jobs_view
from components.layout import shared_sidebar

shared_sidebar()
st.title("Fine-tuning")
st.caption("Turn a file of prompt/response pairs (e.g. viewer comments and your replies) into training "
           "data: see exactly what will be trained, what is wrong with it, and what it would cost.")
new_tab, saved_tab, jobs_tab = st.tabs(["New dataset", "Saved datasets", "Training jobs"])
with new_tab:
    dataset_wizard()
with saved_tab:
    saved_datasets()
with jobs_tab:
    jobs_view()
st.info("Training jobs (on OpenAI, or locally on the embedded model) are not in this version yet: "
        "download the files above, or use `python -m studio dataset prepare` for the same data.", icon="ℹ️")
