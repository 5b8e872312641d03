"""A test collection restricted to the first documents of its collection
(``indexation.max_docs``)"""

import logging
from pathlib import Path

from datamaestro_ir.data import Adhoc
from datamaestro_ir.data.csv import Topics
from datamaestro_ir.data.trec import TrecAdhocAssessments
from experimaestro import Annotated, Param, Task, pathgenerator, tqdm

__all__ = ["IndexedSubset"]


class IndexedSubset(Task):
    """The queries of an ad-hoc dataset that have a relevant document among
    the first ``max_docs`` documents, with judgements on those documents
    only: the dataset as if the collection were these documents"""

    # (its identifier when it was in splade/evaluation.py)
    __xpmid__ = "splade.evaluation.indexedsubset"

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
