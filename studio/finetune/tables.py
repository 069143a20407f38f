"""The database tables of fine-tuning jobs (see studio.finetune.jobs, which reads and writes them)."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text

from studio.store import USER_LENGTH

metadata = MetaData()

finetune_jobs = Table(
    "finetune_jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), index=True, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("base_model", String(200), nullable=False),
    Column("dataset_version_id", String(64), nullable=False),
    Column("suffix", String(64), nullable=False),
    Column("seed", Integer),
    Column("hyperparameters", JSON, nullable=False),
    Column("status", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("provider_job_id", String(200)),
    Column("training_file_id", String(200)),
    Column("validation_file_id", String(200)),
    Column("trained_tokens", Integer),
    Column("result_model", String(300)),
    Column("result_files", JSON, nullable=False),
    Column("error_code", String(100), nullable=False),
    Column("error_message", Text, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("checkpoints", JSON, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
)
finetune_events = Table(
    "finetune_events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),   # insertion order breaks time ties
    Column("job_id", String(64), index=True, nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSON),
    Index("ux_finetune_events_id", "job_id", "event_id", unique=True),
)
finetune_metrics = Table(
    "finetune_metrics", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("epoch", Float),
    Column("train_loss", Float),
    Column("valid_loss", Float),
    Column("tokens_per_s", Float),
    Column("eta_s", Float),
)
finetuned_models = Table(
    "finetuned_models", metadata,
    Column("id", String(300), primary_key=True),
    Column("owner", String(USER_LENGTH), index=True, nullable=False),
    Column("job_id", String(64), index=True, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("base_model", String(200), nullable=False),
    Column("adapter_path", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
