"""Data used by the experiment, resolved from the configuration

Every data source is a datamaestro dataset identifier, so that MS MARCO and
the embedded debug collection (``splade.debug.*``, see
:mod:`splade.repository`) go through the same code; a collection given as
files (``data.local``, see :mod:`splade.local`) is imported by a task into
the same data types, and named ``local`` / ``local:<split>``.
"""

import logging
import weakref
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import ir_measures
from datamaestro import prepare_dataset
from datamaestro_ir.data import Adhoc
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Param, Task, experiment, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluations
from xpmir.measures import Measure

from splade.configuration import Data, LocalCollection
from splade.errors import ConfigurationError
from splade.local import (
    CollectionSummary,
    ImportLocalCollection,
    ImportLocalDocuments,
    read_collection,
)
from splade.results import ResultsTable

LOCAL = "local"


def dataset(dataset_id: str, data: Optional[Data] = None):
    """Returns a datamaestro dataset (prepared lazily: files are downloaded
    or generated just before the first task that needs them), or a part of
    the local collection of ``data`` (``local``, ``local:<split>``)"""
    if dataset_id == LOCAL or dataset_id.startswith(f"{LOCAL}:"):
        if data is None or data.local is None:
            raise ConfigurationError(f"{dataset_id}: data.local is not set")
        imported = local_data(data.local)
        if dataset_id == LOCAL:
            return imported.documents
        return imported.splits[local_split(data, dataset_id)]
    return prepare_dataset(dataset_id)


def local_split(data: Data, dataset_id: str) -> str:
    """The split named by ``local:<split>``"""
    split = dataset_id.split(":", 1)[1]
    if split not in data.local.splits:
        raise ConfigurationError(
            f"{dataset_id}: data.local.splits has no {split!r}"
            f" (it has {sorted(data.local.splits)})"
        )
    return split


def local_paths(local: LocalCollection):
    """Absolute paths of the files of a local collection"""

    def path(value: Optional[str]) -> Optional[Path]:
        return Path(value).expanduser().resolve() if value else None

    return path(local.documents), {
        name: {
            "queries": path(split.queries),
            "qrels": path(split.qrels),
            "teacher": path(split.teacher),
        }
        for name, split in local.splits.items()
    }


_inspected: Dict[Tuple, CollectionSummary] = {}
#: experiment -> digest -> submitted import task
_imported: "weakref.WeakKeyDictionary[experiment, Dict[str, object]]" = (
    weakref.WeakKeyDictionary()
)


def inspect_local(local: LocalCollection) -> CollectionSummary:
    """Reads and checks the files of a local collection (once per run):
    raises :class:`splade.local.CollectionError` naming file and line"""
    documents, splits = local_paths(local)
    key = (documents, tuple((n, tuple(p.items())) for n, p in splits.items()))
    stamps = tuple(
        (p, p.stat().st_mtime_ns, p.stat().st_size)
        for p in [documents] + [q for s in splits.values() for q in s.values() if q]
        if p.is_file()
    )
    if (key, stamps) not in _inspected:
        summary = read_collection(documents, splits)
        for warning in summary.warnings():
            logging.warning("data.local: %s", warning)
        _inspected[(key, stamps)] = summary
    return _inspected[(key, stamps)]


def local_data(local: LocalCollection):
    """The tasks that import the local collection (submitted once per
    experiment): the documents, shared by all experiments on them, then the
    splits"""
    summary = inspect_local(local)
    documents, splits = local_paths(local)
    imported = _imported.setdefault(experiment.current(), {})
    if summary.documents_digest not in imported:
        imported[summary.documents_digest] = ImportLocalDocuments.C(
            documents=str(documents),
            digest=summary.documents_digest,
            document_count=summary.documents,
        ).submit()
    if summary.digest not in imported:
        imported[summary.digest] = ImportLocalCollection.C(
            documents=imported[summary.documents_digest],
            documents_file=str(documents),
            splits={
                name: {k: str(v) for k, v in paths.items() if v}
                for name, paths in splits.items()
            },
            digest=summary.splits_digest,
        ).submit()
    return imported[summary.digest]


def measure(name: str) -> Measure:
    """Converts an ir_measures name (e.g. ``nDCG@10``) to an xpmir measure"""
    parsed = ir_measures.parse_measure(name)
    identifier, _, cutoff = name.partition("@")
    assert parsed.NAME == identifier, f"Measure {name}: only NAME@k is supported"
    return Measure.C(identifier=identifier, cutoff=int(cutoff) if cutoff else None)


def test_collections(data: Data, measures: List[str], max_docs: int) -> ResultsTable:
    """The test collections, with the measures computed on each

    When only the first ``max_docs`` documents are indexed, the queries and
    judgements are restricted to them; a test collection named in
    ``data.test_sizes`` is a random sample of its queries.
    """
    parsed = [measure(name) for name in measures]
    collections = {}
    for key, dataset_id in data.tests.items():
        collection = dataset(dataset_id, data)
        if max_docs > 0:
            collection = IndexedSubset.C(dataset=collection, max_docs=max_docs).submit()
        if size := data.test_sizes.get(key):
            collection = RandomFold.C(
                dataset=collection, seed=0, fold=0, sizes=[size]
            ).submit()
        collections[key] = Evaluations(collection, parsed)
    return ResultsTable(measures, **collections)


class IndexedSubset(Task):
    """The queries of an ad-hoc dataset that have a relevant document among
    the first ``max_docs`` documents, with judgements on those documents
    only: the dataset as if the collection were these documents"""

    dataset: Param[Adhoc]
    """The full dataset"""

    max_docs: Param[int]
    """Number of documents kept (in collection order, as indexers use)"""

    topics: Annotated[Path, pathgenerator("topics.tsv")]
    assessments: Annotated[Path, pathgenerator("qrels.txt")]

    def task_outputs(self, dep) -> Adhoc:
        return dep(
            Adhoc.C(
                id="",
                documents=self.dataset.documents,
                topics=dep(Topics.C(id="", path=self.topics)),
                assessments=dep(TrecAdhocAssessments.C(id="", path=self.assessments)),
            )
        )

    def execute(self):
        documents = self.dataset.documents
        count = min(self.max_docs, documents.documentcount)
        indexed = {
            documents.docid_internal2external(ix)
            for ix in tqdm(range(count), desc="Indexed document ids")
        }
        kept = set()
        with self.assessments.open("wt") as fp:
            for topic in self.dataset.assessments.iter():
                judged = [a for a in topic.assessments if a.doc_id in indexed]
                if any(a.rel > 0 for a in judged):
                    kept.add(topic.topic_id)
                    for a in judged:
                        fp.write(f"{topic.topic_id} 0 {a.doc_id} {a.rel}\n")
        total = 0
        with self.topics.open("wt") as fp:
            for topic in self.dataset.topics.iter():
                total += 1
                if topic["id"] in kept:
                    fp.write(f"{topic['id']}\t{topic['text_item'].text}\n")
        logging.info("Kept %d queries out of %d", len(kept), total)


def held_out(data: Data) -> bool:
    """Whether validation queries are held out of the training split"""
    return (
        data.validation == data.train
        and data.validation.startswith(f"{LOCAL}:")
        and data.validation_size > 0
    )


def _local_folds(data: Data, seed: int, launcher=None):
    """Validation queries and training queries of a local split"""
    split = local_split(data, data.train)
    count = inspect_local(data.local).splits[split].queries
    if count <= data.validation_size:
        raise ConfigurationError(
            f"data.validation_size: {data.validation_size} validation queries"
            f" held out of {data.train} leave none of its {count} for training"
        )
    return RandomFold.folds(
        seed=seed,
        sizes=[data.validation_size, count - data.validation_size],
        dataset=dataset(data.train, data),
        submit=False,
    )


def validation_queries(data: Data, seed: int, launcher=None) -> Adhoc:
    """Validation queries: all of them, or a random sample of
    ``data.validation_size`` queries (never from ``data.validation_exclude``;
    held out of training when they come from the training split)"""
    if held_out(data):
        return _local_folds(data, seed)[0].submit(launcher=launcher)
    validation = dataset(data.validation, data)
    if data.validation_size <= 0:
        return validation
    exclude = (
        dataset(data.validation_exclude, data).topics
        if data.validation_exclude
        else None
    )
    return RandomFold.C(
        dataset=validation,
        seed=seed,
        fold=0,
        sizes=[data.validation_size],
        exclude=exclude,
    ).submit(launcher=launcher)


def training_queries(data: Data, seed: int, launcher=None) -> Adhoc:
    """Queries with relevance judgements for training (``data.train``),
    without the held-out validation queries"""
    if held_out(data):
        return _local_folds(data, seed)[1].submit(launcher=launcher)
    return dataset(data.train, data)


def hf_model(base_hf_id: str) -> str:
    """Resolves ``base_hf_id`` into what Hugging Face ``from_pretrained``
    takes: an absolute folder path for a local folder or for a model made
    by this package (``splade.*`` datamaestro ids), a hub id otherwise"""
    local = Path(base_hf_id).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if base_hf_id.startswith("splade."):
        return str(prepare_dataset(base_hf_id, download=True).path)
    return base_hf_id
