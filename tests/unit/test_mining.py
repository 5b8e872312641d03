"""Hard negatives mined by a first stage and scored by a teacher (SPLADE++
SelfDistil): the parts, and why xpmir's own mining tasks are not used (the whole
chain on the debug collection: tests/pipeline/test_mining_chain.py)"""

from pathlib import Path
from typing import List

import pytest
from datamaestro_ir.data.base import ScoredDocument

from splade.debug_teacher import DebugTeacher
from splade.mining import read_run


def test_the_debug_teacher_ranks_the_query_topics_documents_first(collection):
    """The oracle knows the concepts: for each test query, the documents of
    its topic (relevant) score above those that share one concept or none,
    the synonyms that documents contain (decoys) count for nothing"""
    teacher = DebugTeacher.C().instance()
    teacher.initialize()
    texts = dict(collection.documents)
    relevant = {}
    for qid, docid, _ in collection.qrels["test"]:
        relevant.setdefault(qid, set()).add(docid)
    for qid, query in collection.queries["test"][:20]:
        scores = {d: teacher.score(query, t) for d, t in list(texts.items())[:400]}
        positives = [s for d, s in scores.items() if d in relevant[qid]]
        negatives = [s for d, s in scores.items() if d not in relevant[qid]]
        assert positives and min(positives) >= 2  # both concepts
        assert sorted(negatives)[-len(positives) - 20] < 2


def test_read_run_keeps_the_best_of_each_query(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text(
        "q1 Q0 d1 1 3.0 x\nq1 Q0 d2 2 5.0 x\nq1 Q0 d3 3 1.0 x\nq2 Q0 d9 1 2.0 x\n"
    )
    assert read_run(path, 2) == {"q1": ["d2", "d1"], "q2": ["d9"]}


def test_cross_encoder_configuration_offline(tmp_path):
    """xpmir's hf_cross_scorer reads the model's configuration from the hub
    while the experiment is built (the network is refused here);
    cross_scorer builds it without, as hf_cross_scorer would for a local
    folder"""
    from transformers import BertConfig, BertForSequenceClassification
    from xpmir.neural.huggingface import hf_cross_scorer

    from splade.workarounds.xpmir import cross_scorer

    with pytest.raises(OSError):
        hf_cross_scorer("cross-encoder/ms-marco-MiniLM-L-6-v2")
    scorer, tasks = cross_scorer("cross-encoder/ms-marco-MiniLM-L-6-v2", 512)
    assert scorer.tokenizer.max_length == 512 and len(tasks) == 1

    folder = tmp_path / "ce"
    config = BertConfig(
        vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=1
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    upstream, _ = hf_cross_scorer(str(folder), max_length=512)
    ours, _ = cross_scorer(str(folder), 512)
    assert ours.__identifier__().all == upstream.__identifier__().all


# --- xpmir 1.5.0's own mining tasks, not used (upstream behaviour)


class _Retriever:
    """What xpmir's retriever contract asks: retrieve(a query record)"""

    def retrieve(self, record) -> List[ScoredDocument]:
        if not isinstance(record, dict):
            raise TypeError(f"a record is expected, got {record!r}")
        return [ScoredDocument({"id": f"d{j}"}, 5.0 - j) for j in range(3)]


def test_upstream_hard_negative_sampler_outputs_cannot_be_built():
    """ModelBasedHardNegativeSampler.task_outputs gives TSVPairwiseSampleDataset
    an `ids` argument it does not have (xpmir/letor/samplers/__init__.py:
    528-533): the package mines with xpmir's Evaluate (run kept) and its own
    ScoreCandidates task instead"""
    from xpmir.letor.samplers import TSVPairwiseSampleDataset

    with pytest.raises(ValueError, match="ids"):
        TSVPairwiseSampleDataset.C(ids="x", hard_negative_samples_path=Path("x.tsv"))


def test_upstream_model_based_sampler_retrieves_with_a_string(tmp_path):
    """ModelBasedSampler._itertopics calls retriever.retrieve with the query's
    text, where retrievers take a record (xpmir/letor/samplers/__init__.py:
    135-137)"""
    import inspect
    import logging
    from types import SimpleNamespace

    from xpmir.letor.samplers import ModelBasedSampler

    qrels = SimpleNamespace(
        topic_id="q1", assessments=[SimpleNamespace(doc_id="d0", rel=1)]
    )
    query = {"id": "q1", "text_item": SimpleNamespace(text="some query text")}
    sampler = SimpleNamespace(
        logger=logging.getLogger("test"),
        retriever=_Retriever(),
        dataset=SimpleNamespace(
            assessments=SimpleNamespace(iter=lambda: iter([qrels])),
            topics=SimpleNamespace(iter=lambda: iter([query])),
        ),
    )
    with pytest.raises(TypeError, match="a record is expected, got 'some query"):
        # _itertopics is wrapped by experimaestro's @cache: call what it wraps
        itertopics = inspect.getclosurevars(ModelBasedSampler._itertopics)
        list(itertopics.nonlocals["fn"](sampler, tmp_path / "run.tsv"))


def test_upstream_teacher_sampler_calls_a_missing_method():
    """TeacherModelBasedHardNegativesTripletSampler calls pairwise_iter(),
    which xpm_torch's samplers no longer have"""
    import inspect

    from xpmir.letor.samplers import (
        PairwiseSampler,
        TeacherModelBasedHardNegativesTripletSampler,
    )

    source = inspect.getsource(TeacherModelBasedHardNegativesTripletSampler)
    assert "pairwise_iter()" in source
    assert not hasattr(PairwiseSampler, "pairwise_iter")
