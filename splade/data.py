"""Data used by the experiment, resolved from the configuration

Every data source is a datamaestro dataset identifier, so that MS MARCO and
the embedded debug collection (``splade.debug.*``, see
:mod:`splade.repository`) go through the same code.
"""

import logging
from pathlib import Path
from typing import List

import ir_measures
from datamaestro import prepare_dataset
from datamaestro_ir.data import Adhoc
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Param, Task, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluations
from xpmir.measures import Measure

from splade.configuration import Data
from splade.results import ResultsTable


def dataset(dataset_id: str):
    """Returns a datamaestro dataset (prepared lazily: files are downloaded
    or generated just before the first task that needs them)"""
    return prepare_dataset(dataset_id)


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
        collection = dataset(dataset_id)
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


def validation_queries(data: Data, seed: int, launcher=None) -> Adhoc:
    """Validation queries: all of them, or a random sample of
    ``data.validation_size`` queries (never from ``data.validation_exclude``)"""
    validation = dataset(data.validation)
    if data.validation_size <= 0:
        return validation
    exclude = (
        dataset(data.validation_exclude).topics if data.validation_exclude else None
    )
    return RandomFold.C(
        dataset=validation,
        seed=seed,
        fold=0,
        sizes=[data.validation_size],
        exclude=exclude,
    ).submit(launcher=launcher)


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
