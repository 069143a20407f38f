"""Vector stores (`/v1/vector_stores`): stores, file batches, attached files and search.

Shapes follow OpenAI's OpenAPI document (VectorStoreObject, VectorStoreFileBatchObject,
VectorStoreFileObject, VectorStoreSearchResultsPage). Processing takes time: an attached file
is `in_progress` for `fake.vs_process_s` seconds after its batch was created, then
`completed`, or `failed` with `last_error`:
  - `unsupported_file` for a type file_search cannot read (e.g. .csv, .xlsx, a name with no
    extension), as OpenAI's list of supported types says;
  - `invalid_file` for an empty file, text that is not UTF-8, or a PDF/.docx that cannot be read;
  - any code in `fake.vs_fail` ({filename: code}) for that file name.
The fake reads files with its own simple readers (pypdf for PDF, the .docx XML with tags
stripped, HTML with tags stripped) and chunks them by words (the static strategy's sizes, or
800/400). Search scores a chunk by the share of the query's words (question words aside) it holds (0..1).
"""
from __future__ import annotations

import io
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.fake_openai.errors import FakeAPIError

if TYPE_CHECKING:
    from tests.fakes.fake_openai.server import FakeOpenAI

# file_search's supported file types (OpenAI's tools-file-search guide), the ones tests meet.
SUPPORTED = {".c", ".cpp", ".css", ".doc", ".docx", ".go", ".html", ".java", ".js", ".json", ".md", ".pdf",
             ".php", ".pptx", ".py", ".rb", ".sh", ".tex", ".ts", ".txt"}
QUERY_WORD = re.compile(r"\w{3,}")
QUESTION_WORDS = {"how", "many", "much", "does", "what", "which", "who", "when", "where", "why", "the", "and",
                  "for", "are", "can", "you", "your", "with", "this", "that", "should", "would", "there"}
TAG = re.compile(r"<[^>]+>")


@dataclass
class AttachedFile:
    file_id: str
    filename: str
    attached_at: float
    chunk_size: int
    overlap: int
    batch_id: str = ""
    failure: tuple[str, str] | None = None     # (code, message) once decided
    chunks: list[str] = field(default_factory=list)


@dataclass
class FakeVectorStore:
    id: str
    name: str
    metadata: dict
    created_at: int
    files: dict[str, AttachedFile] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)     # batch id -> file ids


def routes(fake: "FakeOpenAI") -> list[Route]:
    api = _VectorStoresAPI(fake)
    base = "/v1/vector_stores/{vs}"
    return [
        Route("/v1/vector_stores", api.create, methods=["POST"]),
        Route(base, api.retrieve, methods=["GET"]),
        Route(base, api.delete, methods=["DELETE"]),
        Route(base + "/file_batches", api.create_batch, methods=["POST"]),
        Route(base + "/file_batches/{batch}", api.get_batch, methods=["GET"]),
        Route(base + "/file_batches/{batch}/files", api.batch_files, methods=["GET"]),
        Route(base + "/files", api.list_files, methods=["GET"]),
        Route(base + "/files/{fid}", api.delete_file, methods=["DELETE"]),
        Route(base + "/search", api.search, methods=["POST"]),
    ]


def read_text(filename: str, data: bytes) -> str:
    """The fake's own reading of an uploaded file; ValueError when it cannot be read."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix == ".pdf":
        from pypdf import PdfReader
        try:
            return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
        except Exception as exc:
            raise ValueError(f"The PDF could not be parsed ({type(exc).__name__}).") from None
    if suffix == ".docx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return TAG.sub(" ", z.read("word/document.xml").decode("utf-8"))
        except Exception:
            raise ValueError("The document could not be parsed.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("The file is not valid UTF-8 text.") from None
    return TAG.sub(" ", text) if suffix == ".html" else text


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    words = text.split()
    step = max(1, size - overlap)
    return [" ".join(words[i:i + size]) for i in range(0, max(len(words) - overlap, 1), step) if words[i:i + size]]


def score(query: str, chunk: str) -> float:
    wanted = {w.lower() for w in QUERY_WORD.findall(query)} - QUESTION_WORDS
    if not wanted:
        return 0.0
    have = {w.lower() for w in QUERY_WORD.findall(chunk)}
    return round(len(wanted & have) / len(wanted), 4)


def search_stores(fake: "FakeOpenAI", store_ids: list[str], query: str, limit: int) -> list[dict]:
    """Ranked results over the completed files of the stores: {file_id, filename, score, text}."""
    results = []
    for sid in store_ids:
        store = fake.vector_stores.get(sid)
        if store is None:
            raise FakeAPIError(404, f"Vector store with id '{sid}' not found.", param="vector_store_id")
        for f in store.files.values():
            if _status(fake, f) != "completed":
                continue
            for chunk in f.chunks:
                s = score(query, chunk)
                if s > 0:
                    results.append({"file_id": f.file_id, "filename": f.filename, "score": s, "text": chunk})
    results.sort(key=lambda r: -r["score"])
    return results[:limit]


def _status(fake: "FakeOpenAI", f: AttachedFile) -> str:
    if f.failure is None and not f.chunks:      # not processed yet
        if time.monotonic() - f.attached_at < fake.vs_process_s:
            return "in_progress"
        _process(fake, f)
    return "failed" if f.failure else "completed"


def _process(fake: "FakeOpenAI", f: AttachedFile) -> None:
    uploaded = fake.files.get(f.file_id)
    suffix = "." + f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else ""
    if f.filename in fake.vs_fail:
        f.failure = (fake.vs_fail[f.filename], "The file could not be processed.")
    elif suffix not in SUPPORTED:
        f.failure = ("unsupported_file", f"Files with extension [{suffix or 'none'}] are not supported for retrieval.")
    elif uploaded is None or not uploaded.data.strip():
        f.failure = ("invalid_file", "The file is empty.")
    else:
        try:
            text = read_text(f.filename, uploaded.data)
        except ValueError as exc:
            f.failure = ("invalid_file", str(exc))
            return
        f.chunks = chunk_words(text, f.chunk_size, f.overlap)
        if not f.chunks:
            f.failure = ("invalid_file", "No text could be extracted from the file.")


class _VectorStoresAPI:
    def __init__(self, fake: "FakeOpenAI"):
        self.fake = fake

    def _store(self, request: Request) -> FakeVectorStore:
        sid = request.path_params["vs"]
        store = self.fake.vector_stores.get(sid)
        if store is None:
            raise FakeAPIError(404, f"Vector store with id '{sid}' not found.", param="vector_store_id")
        return store

    def _counts(self, files: list[AttachedFile]) -> dict:
        statuses = [_status(self.fake, f) for f in files]
        return {"in_progress": statuses.count("in_progress"), "completed": statuses.count("completed"),
                "failed": statuses.count("failed"), "cancelled": 0, "total": len(statuses)}

    def _store_json(self, store: FakeVectorStore) -> dict:
        counts = self._counts(list(store.files.values()))
        return {"id": store.id, "object": "vector_store", "created_at": store.created_at, "name": store.name,
                "usage_bytes": sum(len(c) for f in store.files.values() for c in f.chunks),
                "file_counts": counts, "status": "in_progress" if counts["in_progress"] else "completed",
                "expires_at": None, "last_active_at": store.created_at,
                "metadata": store.metadata}

    def _file_json(self, store: FakeVectorStore, f: AttachedFile) -> dict:
        status = _status(self.fake, f)
        error = {"code": f.failure[0], "message": f.failure[1]} if status == "failed" and f.failure else None
        return {"id": f.file_id, "object": "vector_store.file", "usage_bytes": sum(len(c) for c in f.chunks),
                "created_at": int(f.attached_at), "vector_store_id": store.id, "status": status,
                "last_error": error, "attributes": {},
                "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": f.chunk_size,
                                                                   "chunk_overlap_tokens": f.overlap}}}

    def _batch_json(self, store: FakeVectorStore, batch_id: str) -> dict:
        files = [store.files[fid] for fid in store.batches[batch_id] if fid in store.files]
        counts = self._counts(files)
        return {"id": batch_id, "object": "vector_store.files_batch", "created_at": store.created_at,
                "vector_store_id": store.id, "status": "in_progress" if counts["in_progress"] else "completed",
                "file_counts": counts}

    @staticmethod
    def _list(items: list[dict], request: Request) -> dict:
        after = request.query_params.get("after")
        limit = int(request.query_params.get("limit") or 20)
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0) if after else 0
        data = items[start:start + limit]
        return {"object": "list", "data": data, "has_more": start + limit < len(items),
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    async def create(self, request: Request):
        body = await self.fake.begin(request) or {}
        store = FakeVectorStore(self.fake.new_id("vs"), body.get("name", ""), body.get("metadata") or {},
                                int(time.time()))
        self.fake.vector_stores[store.id] = store
        return JSONResponse(self._store_json(store))

    async def retrieve(self, request: Request):
        await self.fake.begin(request)
        return JSONResponse(self._store_json(self._store(request)))

    async def delete(self, request: Request):
        await self.fake.begin(request)
        store = self._store(request)
        del self.fake.vector_stores[store.id]
        return JSONResponse({"id": store.id, "object": "vector_store.deleted", "deleted": True})

    async def create_batch(self, request: Request):
        body = await self.fake.begin(request) or {}
        store = self._store(request)
        ids = body.get("file_ids") or [f.get("file_id") for f in body.get("files") or []]
        static = (body.get("chunking_strategy") or {}).get("static") or {}
        size, overlap = static.get("max_chunk_size_tokens", 800), static.get("chunk_overlap_tokens", 400)
        if not 100 <= size <= 4096 or overlap > size // 2:
            raise FakeAPIError(400, "Invalid chunking strategy: max_chunk_size_tokens must be 100-4096 and "
                                    "chunk_overlap_tokens at most half of it.", param="chunking_strategy")
        for fid in ids:
            if fid not in self.fake.files:
                raise FakeAPIError(404, f"No such File object: {fid}", param="file_ids")
        batch_id = self.fake.new_id("vsfb")
        for fid in ids:
            if fid not in store.files:   # attaching an attached file again changes nothing
                store.files[fid] = AttachedFile(fid, self.fake.files[fid].filename, time.monotonic(), size, overlap,
                                                batch_id)
        store.batches[batch_id] = list(ids)
        return JSONResponse(self._batch_json(store, batch_id))

    async def get_batch(self, request: Request):
        await self.fake.begin(request)
        store = self._store(request)
        batch_id = request.path_params["batch"]
        if batch_id not in store.batches:
            raise FakeAPIError(404, f"Vector store file batch with id '{batch_id}' not found.", param="batch_id")
        return JSONResponse(self._batch_json(store, batch_id))

    async def batch_files(self, request: Request):
        await self.fake.begin(request)
        store = self._store(request)
        ids = store.batches.get(request.path_params["batch"], [])
        items = [self._file_json(store, store.files[fid]) for fid in ids if fid in store.files]
        return JSONResponse(self._list(items, request))

    async def list_files(self, request: Request):
        await self.fake.begin(request)
        store = self._store(request)
        return JSONResponse(self._list([self._file_json(store, f) for f in store.files.values()], request))

    async def delete_file(self, request: Request):
        await self.fake.begin(request)
        store = self._store(request)
        fid = request.path_params["fid"]
        if store.files.pop(fid, None) is None:
            raise FakeAPIError(404, f"No file found with id '{fid}' in vector store '{store.id}'.", param="file_id")
        return JSONResponse({"id": fid, "object": "vector_store.file.deleted", "deleted": True})

    async def search(self, request: Request):
        body = await self.fake.begin(request) or {}
        store = self._store(request)
        query = body.get("query")
        queries = query if isinstance(query, list) else [query or ""]
        limit = body.get("max_num_results", 10)
        if not 1 <= limit <= 50:
            raise FakeAPIError(400, "max_num_results must be between 1 and 50.", param="max_num_results")
        found = search_stores(self.fake, [store.id], " ".join(queries), limit)
        data = [{"file_id": r["file_id"], "filename": r["filename"], "score": r["score"], "attributes": {},
                 "content": [{"type": "text", "text": r["text"]}]} for r in found]
        return JSONResponse({"object": "vector_store.search_results.page", "search_query": queries, "data": data,
                             "has_more": False, "next_page": None})
