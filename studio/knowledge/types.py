"""The knowledge vocabulary: bases, their files, and the passages a search returns."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# A file's life: queued -> extracting -> chunking -> embedding -> ready, or failed (with the reason).
WORKING = ("queued", "extracting", "chunking", "embedding")
STATUSES = WORKING + ("ready", "failed")


@dataclass
class KnowledgeBase:
    """A named set of documents of one user, and how they are cut into chunks."""
    id: str
    owner: str
    name: str
    chunk_size: int
    chunk_overlap: int
    created_at: datetime
    updated_at: datetime


@dataclass
class KnowledgeFile:
    """One uploaded file and where its indexing stands (`done` of `total` in this stage)."""
    id: str
    base_id: str
    name: str
    kind: str
    sha256: str
    size: int
    status: str
    done: int = 0
    total: int = 0
    error: str = ""
    pages: int = 0
    chunks: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def working(self) -> bool:
        return self.status in WORKING


@dataclass
class Passage:
    """A chunk a search found: its text, where it is from, and its scores."""
    chunk_id: str
    base_id: str
    file_id: str
    file_name: str
    page: int | None
    text: str
    vector: float
    keyword: float
    fused: float
    relevant: bool = True

    @property
    def where(self) -> str:
        """e.g. "guide.pdf, page 3"."""
        return f"{self.file_name}, page {self.page}" if self.page else self.file_name
