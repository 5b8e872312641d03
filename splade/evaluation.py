"""The test collections and the measures computed on them"""

import logging
from pathlib import Path
from typing import List

import ir_measures
from datamaestro_ir.data import Adhoc
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Param, Task, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluations
from xpmir.measures import Measure

from splade.configuration import ConfigurationError, Data, Retrieval
from splade.datasets import Datasets
from splade.results import ResultsTable


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
    found += [
        f"data.test_sizes.{key}: {key} is not a test collection"
        f" (data.tests: {sorted(data.tests)})"
        for key in data.test_sizes
        if key not in data.tests
    ]
    return found


def measure(name: str) -> Measure:
    """The xpmir measure of an ir_measures name (e.g. ``nDCG@10``)"""
    if problem := measure_problem(name):
        raise ConfigurationError(f"retrieval.measures: {problem}")
    identifier, _, cutoff = name.partition("@")
    return Measure.C(identifier=identifier, cutoff=int(cutoff) if cutoff else None)


def test_collections(
    datasets: Datasets, measures: List[str], max_docs: int
) -> ResultsTable:
    """The test collections, with the measures computed on each

    When only the first ``max_docs`` documents are indexed, the queries and
    judgements are restricted to them; a test collection named in
    ``data.test_sizes`` is a random sample of its queries.
    """
    parsed = [measure(name) for name in measures]
    collections = {}
    for key, dataset_id in datasets.data.tests.items():
        collection = datasets.get(dataset_id)
        if max_docs > 0:
            collection = IndexedSubset.C(dataset=collection, max_docs=max_docs).submit()
        if size := datasets.data.test_sizes.get(key):
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
