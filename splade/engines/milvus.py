"""Milvus (https://milvus.io): a vector database that holds sparse vectors
natively (``SPARSE_FLOAT_VECTOR`` fields, an inverted index, the inner
product) and runs as a cluster, so that an index can grow past one machine

The SPLADE index is the exhaustive engine's (built, or merged from shards,
as usual); :class:`MilvusLoader`, a task of its own, inserts its documents
into a Milvus collection (``id``: the document's number in the index,
``docid``: its id in the collection of documents, ``vector``: its SPLADE
vector; documents without any term are left out, as no query can score
them), in batches of ``batch_size`` documents with a progress bar, then
builds the collection's index. A collection that already holds documents
of the index is reused: a killed load resumes where it stopped (documents
are inserted in order, one acknowledged batch at a time; on resuming they
are upserted, so that none is inserted twice), and a finished one is
loaded again by no one. The retriever (:class:`MilvusRetriever`) searches
the collection, queries by batches.

Where the collection lives (``retrieval.engine.milvus.uri``):

- unset (the default): Milvus Lite (``pip install -e ".[milvus]"``), a local
  folder ``milvus.db`` in the loading task's folder, no server. Milvus Lite
  3.x is a pure-Python re-implementation of Milvus for development and tests
  (exact inner product over Python dictionaries): its speed says nothing of
  a Milvus server's. A process holds the folder while it uses it; the
  retrieval tasks of an index that share it wait for each other;
- a server (``http://host:19530``, a cluster's proxy, or Zilliz Cloud's
  endpoint), with the token (``user:password`` or an API key) in the
  environment variable named by ``token_env``: the token is never in the
  YAML files nor in the tasks' parameters. An unreachable server is reported
  when the experiment starts (in a normal run), before any task runs.

Scores are Milvus's inner products (float32): equal to the exhaustive
engine's up to float rounding (``tests/pipeline/test_milvus.py``: the same
documents, scores to 1e-4, on the debug recipe). Latencies are wall-clock
times (the search runs in Milvus, not in the calling thread).
"""

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

import numpy as np
from annotated_types import Gt
from attrs import Factory
from experimaestro import Meta, Param, PathGenerator, Task, field, tqdm
from experimaestro.experiments import configuration
from xpmir.index.sparse import AbstractSparseRetrieverIndex, SparseRetriever
from xpmir.rankers import ScoredDocument

from splade.engines.base import Engine
from splade.engines.exhaustive import ExhaustiveIndexBuilder, document_blocks
from splade.workarounds.datamaestro_ir import documents_int, scored

__all__ = [
    "Milvus",
    "MilvusEngine",
    "MilvusIndex",
    "MilvusLoader",
    "MilvusRetriever",
    "connect",
]

logger = logging.getLogger(__name__)

Value = Union[int, float, str]

#: Seconds a process waits for another one that holds a Milvus Lite folder
LITE_WAIT = 3600
#: Queries sent in one search request
SEARCH_BATCH = 64
#: Longest external document id stored
DOCID_LENGTH = 1024


@configuration
class Milvus:
    """The ``milvus`` engine: where the collection is, its index, and how it
    is loaded and searched (see :mod:`splade.engines.milvus`)"""

    uri: Optional[str] = None
    """A Milvus server, e.g. ``http://host:19530`` (a cluster's proxy, or a
    Zilliz Cloud endpoint); unset: Milvus Lite, a local folder in the
    loading task's folder (for development: its speed is not a server's)"""

    token_env: Optional[str] = None
    """The name of the environment variable that holds the server's token
    (``user:password`` or an API key), e.g. ``MILVUS_TOKEN``; the token itself
    is never written in a YAML file or a task's parameters"""

    collection: str = "splade"
    """Prefix of the collection's name; the name ends with a digest of the
    index (``splade_<16 hex digits>``): each index has its collection"""

    index_type: Literal["SPARSE_INVERTED_INDEX", "SPARSE_WAND"] = (
        "SPARSE_INVERTED_INDEX"
    )
    """The collection's index of the vectors (Milvus's sparse indices)"""

    index_params: Dict[str, Value] = Factory(dict)
    """Parameters of the index (e.g. ``inverted_index_algo: DAAT_MAXSCORE``
    on Milvus 2.5 or later), as Milvus's documentation gives them"""

    search_params: Dict[str, Value] = Factory(lambda: {"drop_ratio_search": 0.0})
    """Search parameters (``drop_ratio_search``: the share of the smallest
    query weights ignored; 0: none, an exact search)"""

    batch_size: Annotated[int, Gt(0)] = 1000
    """Documents inserted per request"""

    timeout: Annotated[float, Gt(0)] = 10.0
    """Seconds allowed to reach the server"""


# --- Connection


def _token(token_env: Optional[str]) -> str:
    if not token_env:
        return ""
    if token_env not in os.environ:
        raise RuntimeError(f"the environment variable {token_env} is not set")
    return os.environ[token_env]


def connect(uri: str, token_env: Optional[str] = None, timeout: float = 10.0):
    """A ``MilvusClient`` of a server, or of a Milvus Lite folder (a path
    ending in ``.db``: opened once another process that holds it lets it go,
    within :data:`LITE_WAIT` seconds)"""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import ConnectionConfigException
    except ImportError as error:
        raise ImportError(
            'The milvus engine needs pymilvus: pip install -e ".[milvus]"'
        ) from error
    if not _is_lite(uri):
        return MilvusClient(uri=uri, token=_token(token_env), timeout=timeout)
    deadline, said = time.monotonic() + LITE_WAIT, False
    while True:
        try:
            return MilvusClient(uri=str(uri))
        except ConnectionConfigException:
            if time.monotonic() > deadline:
                raise
            if not said:
                logger.info("Waiting for the process that holds %s", uri)
                said = True
            time.sleep(2)


def _is_lite(uri) -> bool:
    return str(uri).endswith(".db")


def _count(client, collection: str) -> int:
    rows = client.query(collection, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


# --- Tasks


class MilvusIndex(AbstractSparseRetrieverIndex):
    """A Milvus collection loaded by :class:`MilvusLoader`"""

    uri: Param[Optional[str]]
    """The server (None: Milvus Lite, at ``lite_path``)"""

    lite_path: Meta[Optional[Path]] = field(default=None, ignore_default=True)
    """The Milvus Lite folder"""

    collection: Param[str]
    """The collection"""

    token_env: Meta[Optional[str]] = field(default=None, ignore_default=True)
    """The environment variable that holds the server's token"""

    timeout: Meta[float] = field(default=10.0, ignore_default=True)
    """Seconds allowed to reach the server"""

    @property
    def index_path(self) -> Optional[Path]:
        """The Milvus Lite folder (None for a server)"""
        return self.lite_path

    def initialize(self, in_memory: bool = False):
        self.client = connect(
            self.uri or str(self.lite_path), self.token_env, self.timeout
        )
        self.client.load_collection(self.collection)

    def search_batch(self, queries: List[Dict[int, float]], top_k: int, params=None):
        """Document numbers and scores of each query's top-k"""
        results = [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * len(queries)
        asked = [i for i, query in enumerate(queries) if query]
        if not asked:
            return results
        found = self.client.search(
            self.collection,
            data=[{int(t): float(w) for t, w in queries[i].items()} for i in asked],
            anns_field="vector",
            limit=top_k,
            search_params={"metric_type": "IP", "params": dict(params or {})},
            output_fields=["id"],
        )
        for i, hits in zip(asked, found, strict=True):
            results[i] = (
                np.array([hit["id"] for hit in hits], np.int64),
                np.array([hit["distance"] for hit in hits], np.float32),
            )
        return results

    def search(self, query: Dict[int, float], top_k: int, params=None):
        """Document numbers and scores of the top-k of one query"""
        return self.search_batch([query], top_k, params)[0]

    def retrieve(
        self, query: Dict[int, float], top_k: int, params=None
    ) -> List[ScoredDocument]:
        return scored(self.documents, *self.search(query, top_k, params))

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int, params=None
    ) -> List[ScoredDocument]:
        return self.retrieve(query, top_k, params)


class MilvusRetriever(SparseRetriever):
    """Retrieval in a Milvus collection: the queries are encoded in batches,
    then searched :data:`SEARCH_BATCH` at a time"""

    search_params: Param[str] = field(default="{}", ignore_default=True)
    """Milvus's search parameters (JSON)"""

    def get_retrieval_options(self) -> Dict[str, Any]:
        return {"params": json.loads(self.search_params)}

    def retrieve_all(self, queries, shard_and_gather: bool = True):
        import torch

        items = list(queries.items())
        self.encoder.eval()
        vectors = []
        with torch.no_grad():
            for start in range(0, len(items), self.batchsize):
                batch = [record for _, record in items[start : start + self.batchsize]]
                for vector in self.encoder(batch).value.float().cpu().numpy():
                    (terms,) = vector.nonzero()
                    weights = vector[terms].tolist()
                    vectors.append(dict(zip(terms.tolist(), weights, strict=True)))
        results = {}
        for start in range(0, len(items), SEARCH_BATCH):
            found = self.index.search_batch(
                vectors[start : start + SEARCH_BATCH],
                self.topk,
                json.loads(self.search_params),
            )
            for (key, _), (docids, scores) in zip(
                items[start : start + SEARCH_BATCH], found, strict=True
            ):
                results[key] = scored(self.index.documents, docids, scores)
        return results


class MilvusLoader(Task):
    """Inserts the documents of a SPLADE index (the exhaustive engine's)
    into a Milvus collection and builds its index; resumes a killed load,
    reuses a finished one (see :mod:`splade.engines.milvus`)"""

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index (the exhaustive engine's)"""

    uri: Param[Optional[str]] = field(default=None, ignore_default=True)
    """The server (None: Milvus Lite, in this task's folder)"""

    collection: Param[str]
    """The collection's name"""

    index_type: Param[str] = field(default="SPARSE_INVERTED_INDEX", ignore_default=True)
    """Milvus's index of the vectors"""

    index_params: Param[str] = field(default="{}", ignore_default=True)
    """Parameters of the index (JSON)"""

    token_env: Meta[Optional[str]] = field(default=None, ignore_default=True)
    """The environment variable that holds the server's token"""

    batch_size: Meta[int] = field(default=1000, ignore_default=True)
    """Documents inserted per request"""

    timeout: Meta[float] = field(default=10.0, ignore_default=True)
    """Seconds allowed to reach the server"""

    lite_path: Meta[Path] = field(default_factory=PathGenerator("milvus.db"))
    """The Milvus Lite folder (when ``uri`` is None)"""

    def task_outputs(self, dep):
        return dep(
            MilvusIndex.C(
                uri=self.uri,
                lite_path=None if self.uri else self.lite_path,
                collection=self.collection,
                token_env=self.token_env,
                timeout=self.timeout,
                documents=self.index.documents,
            )
        )

    def execute(self):
        from splade.engines.exhaustive import SparseIndex

        index = SparseIndex.load(self.index.index_path, mmap=True)
        client = connect(self.uri or str(self.lite_path), self.token_env, self.timeout)
        try:
            load(
                client,
                self.collection,
                index,
                self.index.documents,
                self.batch_size,
                self.index_type,
                json.loads(self.index_params),
            )
        finally:
            client.close()


def _schema(client):
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("docid", DataType.VARCHAR, max_length=DOCID_LENGTH)
    schema.add_field("vector", DataType.SPARSE_FLOAT_VECTOR)
    return schema


def _fields(client, collection: str) -> List[str]:
    return sorted(f["name"] for f in client.describe_collection(collection)["fields"])


def load(
    client,
    collection: str,
    index,
    documents,
    batch_size: int = 1000,
    index_type: str = "SPARSE_INVERTED_INDEX",
    index_params: Optional[Dict[str, Any]] = None,
) -> int:
    """Inserts the documents of ``index`` (a
    :class:`~splade.engines.exhaustive.SparseIndex`) that have a term into
    the collection (created if needed; resumed from the documents it
    holds), then builds its index; returns the number of documents it holds

    :param documents: the document store (the external ids)
    """
    lengths = np.zeros(index.num_docs, np.int64)
    for start in range(0, index.num_postings, 1 << 26):  # (bounded memory)
        chunk = np.asarray(index.docids[start : start + (1 << 26)])
        lengths += np.bincount(chunk, minlength=index.num_docs)[: index.num_docs]
    present = np.flatnonzero(lengths)  # documents with a term
    if client.has_collection(collection):
        if _fields(client, collection) != ["docid", "id", "vector"]:
            raise RuntimeError(
                f"the Milvus collection {collection} exists and is not a SPLADE"
                " index's (fields id, docid, vector): give another"
                " retrieval.engine.milvus.collection"
            )
        held = _count(client, collection)
    else:
        client.create_collection(collection, schema=_schema(client))
        held = 0
    if held > present.size:
        raise RuntimeError(
            f"the Milvus collection {collection} holds {held} documents, more than"
            f" the index's {present.size}: it is another index's"
        )
    if held < present.size:
        start = int(present[held]) if held else 0
        if held:
            logger.info("Resuming the load of %s at document %d", collection, start)
        insert = client.upsert if held else client.insert
        with tqdm(
            total=int(present.size), initial=held, desc="Milvus", unit="documents"
        ) as progress:
            for first, block in document_blocks(index, batch_size):
                last = first + block.shape[0]
                if last <= start:
                    continue
                numbers = [n for n in range(max(first, start), last) if lengths[n]]
                if not numbers:
                    continue
                records = documents_int(documents, numbers)
                rows = []
                for number, record in zip(numbers, records, strict=True):
                    span = slice(
                        block.indptr[number - first], block.indptr[number - first + 1]
                    )
                    vector = dict(
                        zip(
                            block.indices[span].tolist(),
                            block.data[span].tolist(),
                            strict=True,
                        )
                    )
                    rows.append({"id": number, "docid": record["id"], "vector": vector})
                insert(collection, rows)
                progress.update(len(rows))
        client.flush(collection)
        held = _count(client, collection)
        if held != present.size:
            raise RuntimeError(
                f"the Milvus collection {collection} holds {held} documents after"
                f" loading, not {present.size}"
            )
    _ensure_index(client, collection, index_type, dict(index_params or {}))
    client.load_collection(collection)
    logger.info("Milvus collection %s: %d documents", collection, held)
    return held


def _ensure_index(client, collection: str, index_type: str, params: Dict[str, Any]):
    """The collection's index of the vectors, (re)built if it differs"""
    if "vector" in client.list_indexes(collection):
        current = client.describe_index(collection, "vector")
        same = current.get("index_type") == index_type and all(
            str(current.get(k)) == str(v) for k, v in params.items()
        )
        if same:
            return
        client.release_collection(collection)
        client.drop_index(collection, "vector")
    index_params = client.prepare_index_params()
    index_params.add_index(
        field_name="vector",
        index_name="vector",
        index_type=index_type,
        metric_type="IP",
        params=params,
    )
    client.create_index(collection, index_params)


# --- The engine

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def collection_name(prefix: str, index) -> str:
    """The collection of an index: the prefix and a digest of the index's
    identity"""
    return f"{prefix}_{index.__identifier__().all.hex()[:16]}"


class MilvusEngine(Engine):
    """Milvus (https://milvus.io): sparse vectors in a Milvus collection
    (``SPARSE_INVERTED_INDEX``, inner product), on a server or cluster
    (``uri``; its token in an environment variable, ``token_env``) or, by
    default, in Milvus Lite, a local folder (development only); exact with
    ``drop_ratio_search: 0`` (:mod:`splade.engines.milvus`)"""

    name = "milvus"
    exact = True
    remote = True
    section = "milvus"
    Settings = Milvus
    # (the collection is loaded from the exhaustive index)
    builder = ExhaustiveIndexBuilder
    index_types = (MilvusIndex,)

    @classmethod
    def problems(cls, settings: Milvus) -> List[str]:
        found = []
        key = "retrieval.engine.milvus"
        uri = settings.uri
        if uri and not (re.match(r"^(https?|tcp)://", uri) or uri.startswith("unix:")):
            found.append(
                f"{key}.uri: {uri!r} is not a server address (http://host:19530);"
                " leave it unset for Milvus Lite"
            )
        if settings.token_env and not uri:
            found.append(f"{key}.token_env: a token is for a server (uri)")
        if settings.token_env and not _NAME.match(settings.token_env):
            found.append(
                f"{key}.token_env: the name of an environment variable, not a"
                " token (never write the token in a YAML file)"
            )
        if not _NAME.match(settings.collection):
            found.append(
                f"{key}.collection: letters, digits and underscores, not"
                f" starting with a digit ({settings.collection!r})"
            )
        return found

    @classmethod
    def start_problems(cls, settings: Milvus) -> List[str]:
        key = "retrieval.engine.milvus"
        try:
            import pymilvus  # noqa: F401

            if not settings.uri:
                import milvus_lite  # noqa: F401
        except ImportError as error:
            return [
                f"{key}: the milvus engine needs pymilvus and milvus-lite"
                f' (pip install -e ".[milvus]"): {error}'
            ]
        if not settings.uri:
            return []
        try:
            client = connect(settings.uri, settings.token_env, settings.timeout)
            client.list_collections()
            client.close()
        except Exception as error:
            return [
                f"{key}.uri: cannot reach the Milvus server {settings.uri}"
                f" ({type(error).__name__}: {str(error)[:300]})"
            ]
        return []

    @classmethod
    def retriever(cls, settings: Milvus, index, *, launcher=None, **common):
        loaded = MilvusLoader.C(
            index=index,
            uri=settings.uri,
            collection=collection_name(settings.collection, index),
            index_type=settings.index_type,
            index_params=json.dumps(dict(settings.index_params), sort_keys=True),
            token_env=settings.token_env,
            batch_size=settings.batch_size,
            timeout=settings.timeout,
        ).submit(launcher=launcher)
        return MilvusRetriever.C(
            index=loaded,
            search_params=json.dumps(dict(settings.search_params), sort_keys=True),
            **common,
        )

    @classmethod
    def search(cls, index: MilvusIndex, params=None, **options):
        return lambda query, k: index.search(query, k, params)
