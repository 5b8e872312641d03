"""The test collections and the measures computed on them

Each test collection is searched in an index of its own documents (e.g. a
BEIR dataset), built once per collection of documents: test collections on
the same documents (MS MARCO dev and TREC DL) share their indices.
"""

import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional

import ir_measures
from datamaestro_ir.data import Adhoc
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Param, Task, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluations
from xpmir.measures import Measure

from splade.configuration import (
    ConfigurationError,
    Data,
    Retrieval,
    SPLADEConfiguration,
)
from splade.datasets import Datasets
from splade.results import ResultsTable
from splade.workarounds.xpmir import RelevanceMeasure


def measure_problem(name: str) -> str | None:
    """Why ``name`` is not a measure this package computes (None if it is):
    an ir_measures measure, written ``Name`` or ``Name@k``"""
    try:
        parsed = ir_measures.parse_measure(name)
    except Exception:
        return f"{name!r} is not an ir_measures measure"
    identifier, _, cutoff = name.partition("@")
    if parsed.NAME != identifier or (cutoff and not cutoff.isdigit()):
        return f"{name!r}: only Name or Name@k measures are supported"
    return None


def problems(retrieval: Retrieval, data: Data) -> List[str]:
    """Problems of the measures and of the test sample sizes"""
    found = [
        f"retrieval.measures: {problem}"
        for name in retrieval.measures
        if (problem := measure_problem(name))
    ]
    for field, keys in (
        ("tests_only", data.tests_only),
        ("test_sizes", data.test_sizes),
        ("test_requirements", data.test_requirements),
        *((f"averages.{name}", names) for name, names in data.averages.items()),
    ):
        found += [
            f"data.{field}: {key} is not a test collection"
            f" (data.tests: {sorted(data.tests)})"
            for key in keys
            if key not in data.tests
        ]
    return found


def requirements(cfg: SPLADEConfiguration, section: str, key: str) -> str:
    """Launcher requirements of a task of test collection ``key``:
    ``data.test_requirements`` or else those of ``section`` (``bm25``,
    ``indexation`` or ``retrieval``)"""
    specific = cfg.data.test_requirements.get(key)
    if specific is not None and getattr(specific, section) is not None:
        return getattr(specific, section)
    return getattr(cfg, section).requirements


class PerDocuments:
    """Makes one object (e.g. an index) per document collection:
    ``make(documents, key)`` is called once for each collection, with the
    key of the first test collection that has it; test collections on the
    same documents get the same object"""

    def __init__(self, make: Callable):
        self.make = make
        self.made = {}

    def __call__(self, documents, key: Optional[str] = None):
        identifier = documents.__identifier__().all
        if identifier not in self.made:
            self.made[identifier] = self.make(documents, key)
        return self.made[identifier]


def measure(name: str, relevance: int = 1) -> Measure:
    """The xpmir measure of an ir_measures name (e.g. ``nDCG@10``), whose
    binary relevance starts at ``relevance``"""
    if problem := measure_problem(name):
        raise ConfigurationError(f"retrieval.measures: {problem}")
    identifier, _, cutoff = name.partition("@")
    cutoff = int(cutoff) if cutoff else None
    if relevance == 1:
        return Measure.C(identifier=identifier, cutoff=cutoff)
    return RelevanceMeasure.C(identifier=identifier, cutoff=cutoff, rel=relevance)


def test_collections(
    datasets: Datasets, measures: List[str], max_docs: int
) -> ResultsTable:
    """The test collections, with the measures computed on each

    When only the first ``max_docs`` documents are indexed, the queries and
    judgements are restricted to them; a test collection named in
    ``data.test_sizes`` is a random sample of its queries.
    """
    collections = {}
    data = datasets.data
    for key, dataset_id in selected_tests(data).items():
        relevance = data.binary_relevance.get(key, 1)
        parsed = [measure(name, relevance) for name in measures]
        collection = datasets.get(dataset_id)
        if max_docs > 0:
            collection = IndexedSubset.C(dataset=collection, max_docs=max_docs).submit()
        if size := data.test_sizes.get(key):
            collection = RandomFold.C(
                dataset=collection, seed=0, fold=0, sizes=[size]
            ).submit()
        collections[key] = Evaluations(collection, parsed)
    return ResultsTable(measures, data.averages, **collections)


def selected_tests(data: Data) -> Dict[str, str]:
    """The test collections evaluated (``data.tests_only``, if given)"""
    if not data.tests_only:
        return dict(data.tests)
    return {key: data.tests[key] for key in data.tests_only if key in data.tests}


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
