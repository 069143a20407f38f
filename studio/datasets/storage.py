"""Saved datasets: named, versioned objects of their owner, in the workspace database.

Tables of their own on the Store's SQLAlchemy engine (SQLite or PostgreSQL), like
studio.accounts: `datasets` (one per owner and name), `dataset_versions` (each save: the
source file's name and SHA-256, the options and seed, counts, token/cost summary, the issues
and every example with its split -- enough to rebuild each file byte for byte) and
`dataset_sources` (the uploaded file itself, once per owner and content, so a version can be
reopened and prepared again with other options).

Owner checks go through the Store's `Actor`: owners and admins read; only the owner saves a
new version; the owner or an admin deletes. Failures are `StoreError`s worded for the user.
"""
from __future__ import annotations

from sqlalchemy import (JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        Table, delete, func, insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from studio.datasets.types import (CostEstimate, Counts, Dataset, DatasetVersion, Example,
                                   PrepareOptions, PreparedDataset, TokenSummary, ValidationIssue)
from studio.store import USER_LENGTH, Actor, NotAllowed, StoreError, _aware, _guarded, create_tables_once
from studio.store import check_name as check_object_name
from studio.types import new_id, utcnow

NAME_LENGTH = 100

metadata = MetaData()

datasets = Table(
    "datasets", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("name_key", String(NAME_LENGTH), nullable=False),   # case-folded: one "Comments" per owner
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ux_datasets_owner_name", "owner", "name_key", unique=True),
)
dataset_versions = Table(
    "dataset_versions", metadata,
    Column("id", String(64), primary_key=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("source_kind", String(16), nullable=False),
    Column("source_name", String(300), nullable=False),
    Column("source_sha256", String(64), nullable=False),
    Column("options", JSON, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("summary", JSON, nullable=False),        # tokens and the cost estimate
    Column("issues", JSON, nullable=False),
    Column("notes", JSON, nullable=False),
    Column("validation_given", Boolean, nullable=False),
    Column("examples", JSON, nullable=False),       # [[row, split, excluded_because, tokens, source_file, messages]]
    Index("ux_dataset_versions_number", "dataset_id", "version", unique=True),
)
dataset_sources = Table(
    "dataset_sources", metadata,
    Column("owner", String(USER_LENGTH), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("filename", String(300), nullable=False),
    Column("data", LargeBinary, nullable=False),
)


def check_name(name: str) -> str:
    """A dataset name as stored: trimmed, one line, 1-100 characters."""
    return check_object_name(name, "dataset", NAME_LENGTH)


class DatasetStore:
    """Datasets on `engine` (the Store's). Every call names the acting user (`Actor`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        # On SQLite the Store's engine opens transactions with this option as BEGIN IMMEDIATE,
        # so "find the next version number, then insert it" cannot interleave with another save.
        self._writer = engine.execution_options(studio_write=True)
        self._create_tables()

    @_guarded("set up the dataset tables")
    def _create_tables(self) -> None:
        create_tables_once(self.engine, metadata)

    @_guarded("save the dataset")
    def save_version(self, name: str, prepared: PreparedDataset, actor: Actor,
                     source_bytes: bytes | None = None, after_version: int | None = None) -> DatasetVersion:
        """Save `prepared` as the next version of the actor's dataset `name` (created if new;
        names are case-insensitive). `source_bytes`: the uploaded file, kept once per content
        so the version can be prepared again later. `after_version`: the version `prepared` was
        built on (0: none); StoreError if another was saved meanwhile (its rows would be lost)."""
        name = check_name(name)
        if len(actor.name) > USER_LENGTH:
            raise StoreError(f"A user name can be at most {USER_LENGTH} characters.")
        now = utcnow()
        payload = _version_payload(prepared)
        for attempt in range(2):   # a concurrent first save of the same name: retry as an update
            try:
                with self._writer.begin() as db:
                    row = db.execute(select(datasets.c.id, datasets.c.name).where(
                        datasets.c.owner == actor.name, datasets.c.name_key == name.casefold())
                        .with_for_update()).first()
                    if row is None:
                        dataset_id = new_id("ds")
                        db.execute(insert(datasets).values(id=dataset_id, owner=actor.name, name=name,
                                                           name_key=name.casefold(), created_at=now, updated_at=now))
                        stored_name = name
                    else:
                        dataset_id, stored_name = row.id, row.name
                        db.execute(update(datasets).where(datasets.c.id == dataset_id).values(updated_at=now))
                    number = db.execute(select(func.coalesce(func.max(dataset_versions.c.version), 0))
                                        .where(dataset_versions.c.dataset_id == dataset_id)).scalar_one() + 1
                    if after_version is not None and number - 1 != after_version:
                        raise StoreError(f"'{stored_name}' changed meanwhile (version {number - 1} was saved, "
                                         "in another tab?): nothing was added; try again.")
                    version_id = new_id("dsv")
                    db.execute(insert(dataset_versions).values(id=version_id, dataset_id=dataset_id, version=number,
                                                               created_at=now, **payload))
                    if source_bytes is not None:
                        known = db.execute(select(dataset_sources.c.sha256).where(
                            dataset_sources.c.owner == actor.name,
                            dataset_sources.c.sha256 == prepared.source_sha256)).first()
                        if known is None:
                            db.execute(insert(dataset_sources).values(
                                owner=actor.name, sha256=prepared.source_sha256,
                                filename=prepared.source_name[:300], data=source_bytes))
                break
            except IntegrityError:
                if attempt:
                    raise
        return DatasetVersion(version_id, dataset_id, stored_name, actor.name, number, now, prepared.source_kind,
                              prepared.source_name, prepared.source_sha256, prepared.options, prepared.counts,
                              payload["summary"], prepared)

    @_guarded("list the datasets")
    def list_datasets(self, actor: Actor, everyone: bool = False) -> list[Dataset]:
        """The actor's datasets by name (with `everyone`, admins only: all users')."""
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's datasets.")
        versions = (select(dataset_versions.c.dataset_id, func.count().label("n"),
                           func.max(dataset_versions.c.version).label("latest"))
                    .group_by(dataset_versions.c.dataset_id).subquery())
        query = (select(datasets, versions.c.n, versions.c.latest)
                 .join(versions, versions.c.dataset_id == datasets.c.id, isouter=True)
                 .order_by(datasets.c.name_key, datasets.c.owner))
        if not everyone:
            query = query.where(datasets.c.owner == actor.name)
        with self.engine.connect() as db:
            return [Dataset(r.id, r.owner, r.name, _aware(r.created_at), _aware(r.updated_at), r.n or 0, r.latest or 0)
                    for r in db.execute(query)]

    @_guarded("list the dataset's versions")
    def list_versions(self, dataset_id: str, actor: Actor) -> list[DatasetVersion]:
        """A dataset's versions, newest first, without their examples."""
        with self.engine.connect() as db:
            owner, name = self._readable(db, dataset_id, actor)
            rows = db.execute(select(*_SUMMARY_COLUMNS).where(dataset_versions.c.dataset_id == dataset_id)
                              .order_by(dataset_versions.c.version.desc())).all()
        return [_version_from_row(r, name, owner) for r in rows]

    @_guarded("read the dataset")
    def find(self, name_or_id: str, actor: Actor, version: int | None = None) -> DatasetVersion | None:
        """A version of the actor's dataset by name (any case) or dataset id, with its
        examples; the latest unless `version` is given. None if there is no such version."""
        with self.engine.connect() as db:
            row = db.execute(select(datasets.c.id).where(
                (datasets.c.id == name_or_id)
                | ((datasets.c.owner == actor.name) & (datasets.c.name_key == " ".join(name_or_id.split()).casefold())))
            ).first()
            if row is None:
                return None
            self._readable(db, row.id, actor)
            query = select(dataset_versions.c.id).where(dataset_versions.c.dataset_id == row.id)
            query = (query.where(dataset_versions.c.version == version) if version is not None
                     else query.order_by(dataset_versions.c.version.desc()).limit(1))
            version_id = db.execute(query).scalar()
        return None if version_id is None else self.get_version(version_id, actor)

    @_guarded("read the dataset")
    def get_version(self, version_id: str, actor: Actor) -> DatasetVersion | None:
        """One version with its examples and report (`.prepared`), or None if it is gone."""
        with self.engine.connect() as db:
            row = db.execute(select(dataset_versions, datasets.c.owner, datasets.c.name)
                             .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
                             .where(dataset_versions.c.id == version_id)).first()
        if row is None:
            return None
        if not actor.may_read(row.owner):
            raise NotAllowed("This dataset belongs to another user.")
        version = _version_from_row(row, row.name, row.owner)
        version.prepared = _prepared_from_row(row)
        return version

    @_guarded("read the dataset's source file")
    def get_source(self, version: DatasetVersion, actor: Actor) -> bytes | None:
        """The file a version was prepared from, if it was kept."""
        if not actor.may_read(version.owner):
            raise NotAllowed("This dataset belongs to another user.")
        with self.engine.connect() as db:
            return db.execute(select(dataset_sources.c.data).where(
                dataset_sources.c.owner == version.owner,
                dataset_sources.c.sha256 == version.source_sha256)).scalar()

    @_guarded("delete the dataset version")
    def delete_version(self, version_id: str, actor: Actor) -> None:
        """Delete one version (its owner or an admin); the dataset goes with its last version."""
        with self._writer.begin() as db:
            row = db.execute(select(dataset_versions.c.dataset_id, datasets.c.owner)
                             .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
                             .where(dataset_versions.c.id == version_id)).first()
            if row is None:
                return
            if not actor.may_read(row.owner):
                raise NotAllowed("This dataset belongs to another user.")
            db.execute(delete(dataset_versions).where(dataset_versions.c.id == version_id))
            left = db.execute(select(func.count()).where(dataset_versions.c.dataset_id == row.dataset_id)).scalar_one()
            if not left:
                db.execute(delete(datasets).where(datasets.c.id == row.dataset_id))
            _forget_unused_sources(db, row.owner)

    @_guarded("delete the dataset")
    def delete_dataset(self, dataset_id: str, actor: Actor) -> None:
        """Delete a dataset and all its versions (its owner or an admin)."""
        with self._writer.begin() as db:
            owner = db.execute(select(datasets.c.owner).where(datasets.c.id == dataset_id)).scalar()
            if owner is None:
                return
            if not actor.may_read(owner):
                raise NotAllowed("This dataset belongs to another user.")
            db.execute(delete(dataset_versions).where(dataset_versions.c.dataset_id == dataset_id))
            db.execute(delete(datasets).where(datasets.c.id == dataset_id))
            _forget_unused_sources(db, owner)

    @staticmethod
    def delete_owned(db, owner: str) -> int:
        """Inside an open write transaction: delete every dataset of `owner` (their account is
        being removed). Returns how many datasets went."""
        owned = select(datasets.c.id).where(datasets.c.owner == owner)
        db.execute(delete(dataset_versions).where(dataset_versions.c.dataset_id.in_(owned)))
        gone = db.execute(delete(datasets).where(datasets.c.owner == owner)).rowcount
        db.execute(delete(dataset_sources).where(dataset_sources.c.owner == owner))
        return gone

    @staticmethod
    def _readable(db, dataset_id: str, actor: Actor) -> tuple[str, str]:
        row = db.execute(select(datasets.c.owner, datasets.c.name).where(datasets.c.id == dataset_id)).first()
        if row is None:
            raise StoreError("This dataset no longer exists (it was deleted).")
        if not actor.may_read(row.owner):
            raise NotAllowed("This dataset belongs to another user.")
        return row.owner, row.name


def _forget_unused_sources(db, owner: str) -> None:
    used = (select(dataset_versions.c.source_sha256)
            .join(datasets, datasets.c.id == dataset_versions.c.dataset_id).where(datasets.c.owner == owner))
    db.execute(delete(dataset_sources).where(dataset_sources.c.owner == owner,
                                             dataset_sources.c.sha256.not_in(used)))


_SUMMARY_COLUMNS = (dataset_versions.c.id, dataset_versions.c.dataset_id, dataset_versions.c.version,
                    dataset_versions.c.created_at, dataset_versions.c.source_kind, dataset_versions.c.source_name,
                    dataset_versions.c.source_sha256, dataset_versions.c.options, dataset_versions.c.counts,
                    dataset_versions.c.summary)


def _version_payload(prepared: PreparedDataset) -> dict:
    from dataclasses import asdict
    return {
        "source_kind": prepared.source_kind, "source_name": prepared.source_name[:300],
        "source_sha256": prepared.source_sha256, "options": prepared.options.to_json(),
        "counts": asdict(prepared.counts),
        "summary": {"tokens": asdict(prepared.tokens), "estimate": asdict(prepared.estimate)},
        "issues": [[i.row, i.code, i.message, i.severity, i.blocks_openai_only] for i in prepared.issues],
        "notes": list(prepared.notes), "validation_given": prepared.validation_given,
        "examples": [[e.row, e.split, e.excluded_because, e.tokens, e.source_file, e.messages]
                     + ([e.origin] if e.origin else []) for e in prepared.examples],
    }


def _version_from_row(row, name: str, owner: str) -> DatasetVersion:
    return DatasetVersion(row.id, row.dataset_id, name, owner, row.version, _aware(row.created_at), row.source_kind,
                          row.source_name, row.source_sha256, PrepareOptions.from_json(row.options),
                          Counts(**row.counts), row.summary)


def _prepared_from_row(row) -> PreparedDataset:
    # [row, split, because, tokens, source_file, messages] and, for a row added later, its origin
    examples = [Example(r, messages, split, because, tokens, source_file, *origin)
                for r, split, because, tokens, source_file, messages, *origin in row.examples]
    issues = [ValidationIssue(r, code, message, severity, bool(openai_only))
              for r, code, message, severity, openai_only in row.issues]
    return PreparedDataset(row.source_kind, row.source_name, row.source_sha256, PrepareOptions.from_json(row.options),
                           examples, issues, Counts(**row.counts), TokenSummary(**row.summary["tokens"]),
                           CostEstimate(**row.summary["estimate"]), list(row.notes or []),
                           bool(row.validation_given))

