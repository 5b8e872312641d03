"""The export as an experimaestro task: :class:`ExportIndex` writes an index
of the experiment, and the test queries of its documents encoded by the
model, in the formats of ``export.formats``; :func:`export_indices` submits
one per collection of documents of a model (test collections on the same
documents, e.g. MS MARCO dev and TREC DL, share it, each with its queries)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from datamaestro_ir.data import Topics
from experimaestro import Meta, Param, PathGenerator, Task, field
from xpm_torch.configuration import FabricConfiguration
from xpmir.index.sparse import AbstractSparseRetrieverIndex
from xpmir.text.encoders import TextEncoderBase

from splade.export.source import Collection, QueryVector

__all__ = ["ExportIndex", "StoreIds", "encode_queries", "export_indices", "vocabulary"]

logger = logging.getLogger(__name__)


class StoreIds(Sequence[str]):
    """The external ids of a document store's first ``count`` documents
    (internal id -> id), fetched a block at a time"""

    def __init__(self, documents, count: int, block: int = 10_000):
        self.documents = documents
        self.count = int(count)
        self.block = block
        self._first, self._records = -1, []

    def records(self, first: int, last: int) -> List[dict]:
        from splade.workarounds.datamaestro_ir import documents_int

        return documents_int(self.documents, range(first, last))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, number: int) -> str:
        if not 0 <= number < self.count:
            raise IndexError(number)
        start = number - number % self.block
        if start != self._first:
            last = min(start + self.block, self.count)
            self._records = [r["id"] for r in self.records(start, last)]
            self._first = start
        return self._records[number - start]

    def texts(self, first: int, last: int) -> List[str]:
        return [r["text_item"].text for r in self.records(first, last)]


def vocabulary(encoder) -> Optional[List[Optional[str]]]:
    """The tokens of an initialized xpmir encoder's Hugging Face tokenizer
    (term id -> token), None when it has none"""
    tokenizer = getattr(encoder, "tokenizer", None)
    hf = getattr(getattr(tokenizer, "tokenizer", None), "tokenizer", None)
    if hf is None:
        return None
    return list(hf.convert_ids_to_tokens(list(range(len(hf)))))


def encode_queries(encoder, topics, batch_size: int, device="cpu") -> List[QueryVector]:
    """The non-zero terms and weights of each topic (records with an
    ``id``), encoded by an initialized xpmir encoder"""
    import torch

    records = list(topics)
    encoded = []
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            vectors = encoder(batch).value.float().cpu().numpy()
            for record, vector in zip(batch, vectors, strict=True):
                (terms,) = vector.nonzero()
                weights = vector[terms].astype(np.float32)
                encoded.append(QueryVector(str(record["id"]), terms, weights))
    return encoded


class ExportIndex(Task):
    """Writes a SPLADE index, and the test queries of its documents encoded
    by the model, in the formats that other engines read
    (:mod:`splade.export`; ``docs/exporting.md``)"""

    index: Param[AbstractSparseRetrieverIndex]
    """The index (the exhaustive engine's, or impact-index's, converted)"""

    encoder: Param[TextEncoderBase]
    """The query encoder (its tokenizer names the terms)"""

    topics: Param[Dict[str, Topics]]
    """Query sets to encode and write: name -> topics (records with ids)"""

    formats: Param[List[str]]
    """The formats (:data:`splade.export.FORMATS`)"""

    scale: Param[float] = field(default=100.0, ignore_default=True)
    """Integer weights are ``round(scale * w)`` (Anserini, CIFF)"""

    term_names: Param[str] = field(default="tokens", ignore_default=True)
    """``tokens`` (the tokenizer's) or ``ids``"""

    text: Param[bool] = field(default=False, ignore_default=True)
    """Whether the documents' text is written with their vectors"""

    index_name: Param[str] = field(default="splade", ignore_default=True)
    """OpenSearch / Elasticsearch index of the bulk files"""

    vector_field: Param[str] = field(default="splade", ignore_default=True)
    """OpenSearch / Elasticsearch field of the vectors"""

    size: Param[int] = field(default=1000, ignore_default=True)
    """Documents asked for by each OpenSearch / Elasticsearch query body"""

    batch_size: Meta[int] = field(default=64, ignore_default=True)
    """Queries encoded at once"""

    fabric_config: Meta[FabricConfiguration] = field(
        default_factory=FabricConfiguration.C
    )
    """Device and precision of the query encoder"""

    folder: Meta[Path] = field(default_factory=PathGenerator("export"))
    """The export (a folder per format, and ``export.json``)"""

    def execute(self):
        from splade.engines.exhaustive import term_major
        from splade.export import export

        scratch = self.folder.parent / "postings"
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            index = term_major(self.index, scratch)
            self.encoder.initialize()
            fabric = self.fabric_config.get_fabric()
            self.encoder.to(fabric.device)
            self.encoder.eval()
            queries = {
                name: encode_queries(
                    self.encoder, topics.iter(), self.batch_size, fabric.device
                )
                for name, topics in self.topics.items()
            }
            tokens = vocabulary(self.encoder) if self.term_names == "tokens" else None
            documents = StoreIds(self.index.documents, index.num_docs)
            collection = Collection(
                index,
                docids=documents,
                tokens=tokens,
                queries=queries,
                texts=documents.texts if self.text else None,
            )
            manifest = export(
                collection,
                self.folder,
                self.formats,
                scale=self.scale,
                index_name=self.index_name,
                field=self.vector_field,
                size=self.size,
            )
            logger.info("Exported %s to %s", list(manifest["formats"]), self.folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def export_indices(indices, tests, tags: Dict[str, object]) -> List[ExportIndex]:
    """Submits the exports of a model's indices (none when
    ``export.formats`` is empty): one per collection of documents of the
    test collections, with the queries of each test collection on them

    :param indices: the model's indices (:class:`splade.indexing.SpladeIndices`:
        the configuration, the model, its initialization tasks, the device
        and the launchers)
    :param tests: the test collections (:class:`splade.results.ResultsTable`;
        the exports are listed in its summary)
    :param tags: the model's tags (the export is tagged with them and the
        first test collection's key)
    """
    cfg = indices.cfg
    settings = cfg.export
    if not settings.formats:
        return []
    groups: Dict[str, tuple] = {}
    for key, evaluations in tests.collection.items():
        documents = evaluations.dataset.documents
        identifier = documents.__identifier__().all
        group = groups.setdefault(identifier, (documents, key, {}))
        group[2][key] = evaluations.dataset.topics
    submitted = []
    for documents, key, topics in groups.values():
        task = ExportIndex.C(
            index=indices.index(documents, key),
            encoder=indices.scorer.query_encoder or indices.scorer.encoder,
            topics=topics,
            formats=[str(f) for f in settings.formats],
            scale=settings.scale,
            term_names=str(settings.terms),
            text=settings.text,
            index_name=settings.index_name,
            vector_field=settings.field,
            size=cfg.retrieval.topk,
            batch_size=cfg.retrieval.batch_size,
            fabric_config=indices.device,
        )
        for name, value in {**tags, "dataset": key}.items():
            task.tag(name, value)
        task.submit(
            launcher=indices.launchers.retrieval(key),
            init_tasks=list(indices.init_tasks),
        )
        name = ", ".join(f"{k}={v}" for k, v in tags.items())
        tests.outputs.append((name, f"export ({', '.join(topics)}) {task.folder}"))
        submitted.append(task)
    return submitted
