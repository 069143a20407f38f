"""Fine-tuning: a CSV of comment/response pairs becomes checked, split training data (step 1),
trained on this machine or on OpenAI, and watched as it learns (step 2)."""
import streamlit as st

from components.dataset_wizard import dataset_wizard, price_table, saved_datasets
from components.finetune_jobs import jobs_view
from components.finetune_launch import launch_form
from components.layout import shared_sidebar

shared_sidebar()
st.title("Fine-tuning")
st.caption("Turn a file of prompt/response pairs (e.g. viewer comments and your replies) into training "
           "data: see exactly what will be trained, what is wrong with it, and what it would cost.")
new_tab, saved_tab, jobs_tab = st.tabs(["New dataset", "Saved datasets", "Training jobs"])
with new_tab:
    dataset_wizard()
    price_table()
with saved_tab:
    saved_datasets()
with jobs_tab:
    launch_form()
    st.divider()
    jobs_view()
