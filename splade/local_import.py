"""A local collection in the pipeline: its files, checked once, and the tasks
that import them into the data types of the MS MARCO datasets

The documents are imported by :class:`ImportLocalDocuments`, keyed by the
digest of the documents file, so that every experiment on the same documents
(zero-shot, fine-tuning, other splits) shares the document store and the
indices built on it; the splits (queries, judgements, teacher scores) by
:class:`ImportLocalCollection`, which depends on it. Editing a file re-runs
what depends on it, and nothing else.
"""

import logging
from pathlib import Path
from typing import Dict, List, Optional

from datamaestro_ir.data import Adhoc, DocumentStore
from datamaestro_ir.data.beir import BeirDocumentStore
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.distillation import (
    PairwiseDistillationSamples,
    PairwiseDistillationSamplesTSV,
)
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Config, Meta, Param, Task, pathgenerator

from splade.configuration import LocalCollection
from splade.local_files import CollectionError, CollectionSummary, read_collection

logger = logging.getLogger(__name__)


class LocalData(Config):
    """A local collection in the pipeline's data types"""

    documents: Param[DocumentStore]
    """The documents"""

    splits: Param[Dict[str, Adhoc]]
    """Queries and judgements of each split"""

    teacher: Param[Dict[str, PairwiseDistillationSamples]]
    """Teacher scores of the splits that have them"""


def _check_unchanged(expected: str, actual: str):
    if actual != expected:
        raise RuntimeError(
            "The collection files changed since the experiment started: run it again"
        )


class ImportLocalDocuments(Task):
    """Checks the documents of a local collection and writes them as a
    document store

    Its own task, so that every experiment on the same documents (zero-shot,
    fine-tuning, other splits) shares the store and the indices built on it.
    """

    documents: Param[str]
    """Documents file (absolute path)"""

    digest: Param[str]
    """SHA-256 of the file's content: a new task when it changes"""

    document_count: Param[int]
    """Number of non-empty documents"""

    folder: Annotated[Path, pathgenerator("documents")]

    def task_outputs(self, dep) -> DocumentStore:
        return dep(
            BeirDocumentStore.C(
                id="", path=self.folder / "docstore", count=self.document_count
            )
        )

    def execute(self):
        summary = read_collection(
            Path(self.documents), {}, write=self.folder, parts=("documents",)
        )
        _check_unchanged(self.digest, summary.documents_digest)
        for warning in summary.warnings():
            logger.warning("%s", warning)
        logger.info("%d documents", summary.documents)


class ImportLocalCollection(Task):
    """Checks the splits of a local collection (against its documents) and
    writes them as TSV topics, TREC qrels and teacher scores"""

    documents: Param[DocumentStore]
    """The documents (from :class:`ImportLocalDocuments`)"""

    documents_file: Meta[str]
    """Documents file (absolute path), read to check the splits' document
    ids (its content is identified by ``documents``)"""

    splits: Param[Dict[str, Dict[str, str]]]
    """Split name -> {"queries": path, "qrels": path, "teacher": path} (the
    last two optional)"""

    digest: Param[str]
    """SHA-256 of the splits' files' contents: a new task when a file
    changes"""

    folder: Annotated[Path, pathgenerator("collection")]

    def _splits(self):
        return {
            name: {
                key: Path(paths[key]) if paths.get(key) else None
                for key in ("queries", "qrels", "teacher")
            }
            for name, paths in self.splits.items()
        }

    def task_outputs(self, dep) -> LocalData:
        documents = self.documents
        splits, teacher = {}, {}
        for name, paths in self.splits.items():
            splits[name] = dep(
                Adhoc.C(
                    id="",
                    documents=documents,
                    topics=dep(
                        Topics.C(id="", path=self.folder / f"{name}.queries.tsv")
                    ),
                    assessments=dep(
                        TrecAdhocAssessments.C(
                            id="", path=self.folder / f"{name}.qrels.txt"
                        )
                    )
                    if paths.get("qrels")
                    else None,
                )
            )
            if paths.get("teacher"):
                teacher[name] = dep(
                    PairwiseDistillationSamplesTSV.C(
                        id="",
                        path=self.folder / f"{name}.teacher.tsv",
                        with_docid=True,
                        with_queryid=True,
                    )
                )
        return dep(LocalData.C(documents=documents, splits=splits, teacher=teacher))

    def execute(self):
        summary = read_collection(
            Path(self.documents_file),
            self._splits(),
            write=self.folder,
            parts=("splits",),
        )
        _check_unchanged(self.digest, summary.splits_digest)
        for warning in summary.warnings(documents=False):  # see ImportLocalDocuments
            logger.warning("%s", warning)
        logger.info(
            "%d documents; %s",
            summary.documents,
            ", ".join(f"{n}: {s.queries} queries" for n, s in summary.splits.items()),
        )


class LocalFiles:
    """The files of ``data.local``: read and checked once (on first use),
    imported by tasks submitted once"""

    def __init__(self, local: LocalCollection):
        def path(value: Optional[str]) -> Optional[Path]:
            return Path(value).expanduser().resolve() if value else None

        self.documents = path(local.documents)
        self.splits = {
            name: {
                "queries": path(split.queries),
                "qrels": path(split.qrels),
                "teacher": path(split.teacher),
            }
            for name, split in local.splits.items()
        }
        self._summary: Optional[CollectionSummary] = None
        self._imported: Optional[LocalData] = None

    def files(self) -> Dict[str, Path]:
        """Configuration key -> path, for every file"""
        files = {"data.local.documents": self.documents}
        for name, paths in self.splits.items():
            for kind, path in paths.items():
                if path is not None:
                    files[f"data.local.splits.{name}.{kind}"] = path
        return files

    def problems(self) -> List[str]:
        """Missing files, or the first bad line (file and line), each with
        the key that names the file"""
        files = self.files()
        missing = [
            f"{key}: no file {path}"
            for key, path in files.items()
            if not path.is_file()
        ]
        if missing:
            return missing
        try:
            self.summary()
        except CollectionError as e:
            key = next(k for k, p in files.items() if p == e.path)
            return [f"{key}: {e}"]
        return []

    def summary(self) -> CollectionSummary:
        """What the files hold (read and checked on the first call: raises a
        :class:`CollectionError` naming the file and line)"""
        if self._summary is None:
            self._summary = read_collection(self.documents, self.splits)
            for warning in self._summary.warnings():
                logger.warning("data.local: %s", warning)
        return self._summary

    def imported(self) -> "LocalData":
        """The imported collection (the import tasks are submitted on the
        first call)"""
        if self._imported is None:
            summary = self.summary()
            documents = ImportLocalDocuments.C(
                documents=str(self.documents),
                digest=summary.documents_digest,
                document_count=summary.documents,
            ).submit()
            self._imported = ImportLocalCollection.C(
                documents=documents,
                documents_file=str(self.documents),
                splits={
                    name: {k: str(v) for k, v in paths.items() if v}
                    for name, paths in self.splits.items()
                },
                digest=summary.splits_digest,
            ).submit()
        return self._imported
