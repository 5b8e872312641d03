"""The work-arounds of splade/workarounds/: the upstream behaviour (these
tests fail when upstream changes it, so that the work-around can go), and the
fix; the private attributes the package relies on are checked at start-up
(experiment.wait() and failed jobs: tests/pipeline/test_experiment_failures.py)"""

import pytest
import torch
from conftest import document_store
from xpmir.datasets.adapters import DocumentSubset
from xpmir.rankers.full import FullRetrieverRescorer as UpstreamRescorer

from splade.configuration import Model
from splade.models import splade_model
from splade.workarounds.xpmir import FullRetrieverRescorer


@pytest.fixture(scope="module")
def setup(tmp_path_factory, collection, tiny_model):
    folder = tmp_path_factory.mktemp("docs")
    store = document_store(folder, collection.documents[:40])
    (folder / "docids.txt").write_text(
        "".join(f"{docid}\n" for docid, _ in collection.documents[:40])
    )
    documents = DocumentSubset.C(
        id="test.subset", base=store, docids_path=folder / "docids.txt"
    )
    scorer, _, _ = splade_model(Model(base_hf_id=str(tiny_model)))
    queries = {
        qid: {"id": qid, "text_item": collection.queries["test"][ix][1]}
        for ix, qid in enumerate(["q1", "q2", "q3"])
    }
    return documents, scorer, queries


def rescorer(cls, documents, scorer, tiny_model):
    retriever = cls.C(documents=documents, scorer=scorer, batchsize=16).instance()
    retriever.scorer.initialize()
    retriever.scorer.encoder.load_model(tiny_model)
    retriever.initialize()
    return retriever


def as_records(queries):
    from datamaestro_ir.data import SimpleTextItem

    return {
        qid: {"id": qid, "text_item": SimpleTextItem(q["text_item"])}
        for qid, q in queries.items()
    }


def test_upstream_rescorer_fails_with_dual_models(setup, tiny_model):
    documents, scorer, queries = setup
    retriever = rescorer(UpstreamRescorer, documents, scorer, tiny_model)
    with pytest.raises(TypeError, match="score_product"):
        retriever.retrieve_all(as_records(queries))


def test_rescorer_matches_brute_force(setup, tiny_model):
    documents, scorer, queries = setup
    retriever = rescorer(FullRetrieverRescorer, documents, scorer, tiny_model)
    results = retriever.retrieve_all(as_records(queries))

    model = retriever.scorer
    docs = [documents.document_ext(docid) for docid in documents.docids]
    with torch.no_grad():
        q = model.encode_queries(list(as_records(queries).values())).value
        d = model.encode_documents(docs).value
    expected = q @ d.T
    for ix, qid in enumerate(queries):
        scores = torch.tensor([sd.score for sd in results[qid]])
        ids = [sd.document["id"] for sd in results[qid]]
        assert ids == documents.docids
        torch.testing.assert_close(scores, expected[ix], rtol=1e-5, atol=1e-4)


def test_upstream_one_hot_encoder_is_not_a_records_encoder(tiny_model):
    """spladeV2_doc's query encoder takes strings and returns a bare tensor"""
    from xpmir.neural.splade import spladeV2_doc

    scorer, _, _ = spladeV2_doc(0.0, 1e-4, hf_id=str(tiny_model))
    encoder = scorer.query_encoder.instance()
    encoder.initialize()
    records = as_records({"q": {"text_item": "lazo bomu"}})
    with pytest.raises(ValueError, match="text input must be of type"):
        encoder(list(records.values()))
    assert isinstance(encoder(["lazo bomu"]), torch.Tensor)


def test_binary_query_encoder(tiny_model):
    from transformers import AutoTokenizer

    scorer, _, _ = splade_model(
        Model(base_hf_id=str(tiny_model), architecture="doc", lambda_q=0)
    )
    encoder = scorer.query_encoder.instance()
    encoder.initialize()
    texts = ["lazo bomu lazo", "what about mopege"]
    value = encoder(
        list(as_records({t: {"text_item": t} for t in texts}).values())
    ).value

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for row, text in zip(value, texts, strict=True):
        expected = set(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert set(row.nonzero().flatten().tolist()) == expected
        assert set(row.unique().tolist()) == {0.0, 1.0}


def test_model_based_sampler_gives_document_records():
    """xpmir's PairwiseModelBasedSampler.sample gives a ScoredDocument, which
    the trainers' tokenization cannot read; HardNegativesSampler gives the
    document record"""
    from types import SimpleNamespace

    import numpy as np
    from datamaestro_ir.data import SimpleTextItem
    from xpmir.letor.samplers import PairwiseModelBasedSampler

    from splade.workarounds.xpmir import HardNegativesSampler

    record = {"id": "d1", "text_item": SimpleTextItem("a document")}
    sampler = SimpleNamespace(
        random=np.random.RandomState(0), document=lambda docid: record
    )
    samples = [("d1", 1, 0.0)]
    assert not isinstance(PairwiseModelBasedSampler.sample(sampler, samples), dict)
    assert HardNegativesSampler.sample(sampler, samples) is record


# --- experimaestro


def test_upstream_configuration_ignores_unknown_keys():
    """experimaestro validates YAML values, but ignores keys that are not
    fields: a typo leaves the default in place without a word (hence
    splade.checks.check_command_line, which reads the raw configuration)"""
    from experimaestro.utils.config import validate_attrs

    from splade.configuration import SPLADEConfiguration

    cfg = validate_attrs(SPLADEConfiguration, {"id": "x", "model": {"lamda_d": 1.0}})
    assert cfg.model.lambda_d == 0.4


def test_raw_configuration_is_found_only_under_the_command(monkeypatch):
    from splade.workarounds.experimaestro import command_line

    assert command_line() is None  # not run by experimaestro run-experiment
    monkeypatch.setattr("sys.argv", ["experimaestro", "run-experiment", "x.yaml"])
    with pytest.raises(RuntimeError, match="experiments_cli"):
        command_line()


GENERATED = """
from pathlib import Path

from experimaestro import Config, Param, Task, field, pathgenerator
from typing import Annotated


class Inner(Config):
    path: Annotated[Path, pathgenerator("inner.txt")]


class Outer(Task):
    inner: Param[Inner] = field(ignore_generated=True)

    def execute(self):
        pass
"""


def test_upstream_ignored_generated_values_warn(tmp_path, monkeypatch, caplog):
    """experimaestro warns "Ignoring <field>" when a field declared
    ignore_generated=True holds generated values, as xpmir's
    ValidationSettings.listener does (the validation listener's paths):
    quiet_ignored_generated_values drops that message only"""
    import logging
    import sys

    from experimaestro import experiment
    from experimaestro.scheduler.workspace import RunMode
    from xpmir.letor.validation import ValidationSettings

    from splade.workarounds.experimaestro import (
        IgnoredGeneratedValues,
        quiet_ignored_generated_values,
    )

    assert ValidationSettings.C.__xpmtype__.arguments["listener"].ignore_generated
    (tmp_path / "generated_task.py").write_text(GENERATED)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("generated_task", None)
    from generated_task import Inner, Outer

    root = logging.getLogger()
    # (an experiment of another test may have installed the filter)
    monkeypatch.setattr(
        root,
        "filters",
        [f for f in root.filters if not isinstance(f, IgnoredGeneratedValues)],
    )

    def warnings_of_a_submission(name):
        caplog.clear()
        with experiment(tmp_path / name, name, run_mode=RunMode.DRY_RUN):
            Outer.C(inner=Inner.C()).submit()
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    with caplog.at_level(logging.WARNING):
        assert "Ignoring inner" in warnings_of_a_submission("upstream")
        quiet_ignored_generated_values()
        quiet_ignored_generated_values()  # once only
        assert sum(isinstance(f, IgnoredGeneratedValues) for f in root.filters) == 1
        assert "Ignoring inner" not in warnings_of_a_submission("fixed")
    # other records of the root logger go through
    assert IgnoredGeneratedValues().filter(
        logging.LogRecord(
            "root", logging.WARNING, __file__, 1, "Ignoring %s", ("x",), None
        )
    )


# --- xpm_torch


def test_auto_precision_is_resolved_without_changing_the_configuration():
    from splade.devices import fabric

    config = fabric("auto").instance()
    built = config.get_fabric()
    assert built.strategy.precision.precision == "32-true"  # no GPU here
    assert config.precision == "auto"


# --- Private attributes


def test_private_hooks_are_there():
    from splade.workarounds import check_private_hooks, missing_private_hooks

    assert missing_private_hooks() == []
    check_private_hooks()


def test_a_missing_private_hook_stops_the_start(monkeypatch):
    from experimaestro.scheduler.base import Scheduler

    from splade.workarounds import check_private_hooks

    monkeypatch.delattr(Scheduler, "_cleanup_job_marker_files")
    with pytest.raises(RuntimeError, match="Scheduler._cleanup_job_marker_files"):
        check_private_hooks()


# --- datamaestro-ir


def test_documents_int_fetches_at_once(tmp_path, collection, monkeypatch):
    """Upstream's document_int asks the store for one document per call;
    documents_int asks once for all, and gives the same records"""
    from conftest import document_store

    from splade.workarounds.datamaestro_ir import documents_int

    store = document_store(tmp_path, collection.documents[:50]).instance()
    calls = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def get_by_number(self, ids):
            calls.append(list(ids))
            return self.inner.get_by_number(ids)

    monkeypatch.setattr(store, "_store", Spy(store._store))
    ids = [7, 3, 42, 0]
    expected = [store.document_int(docid) for docid in ids]
    assert calls == [[7], [3], [42], [0]]  # upstream: one call per document
    calls.clear()
    assert documents_int(store, ids) == expected
    assert calls == [ids]


def test_upstream_measure_ignores_its_relevance_level():
    """xpmir's Measure(rel=2) counts documents of relevance 1 as relevant;
    RelevanceMeasure does not (on TREC DL, binary measures count rel >= 2)"""
    import ir_measures
    from xpmir.measures import Measure

    from splade.workarounds.xpmir import RelevanceMeasure

    qrels = [ir_measures.Qrel("q", "d1", 1), ir_measures.Qrel("q", "d2", 2)]
    run = [ir_measures.ScoredDoc("q", "d1", 2.0), ir_measures.ScoredDoc("q", "d2", 1.0)]

    def rr(config):
        measure = config.instance()()
        return measure, ir_measures.calc_aggregate([measure], qrels, run)[measure]

    upstream, value = rr(Measure.C(identifier="RR", rel=2, cutoff=10))
    assert (str(upstream), value) == ("RR@10", 1.0)
    fixed, value = rr(RelevanceMeasure.C(identifier="RR", rel=2, cutoff=10))
    assert (str(fixed), value) == ("RR(rel=2)@10", 0.5)
    ndcg, _ = rr(RelevanceMeasure.C(identifier="nDCG", rel=2, cutoff=10))
    assert str(ndcg) == "nDCG@10"  # graded: no relevance level


def test_upstream_learner_reports_an_epoch_when_asked_for_the_next():
    """xpm_torch's Learner.iter_train reports the training metrics of an
    epoch after yielding its state, and the learner stops asking after the
    last epoch: LastEpochMetrics logs that one (tests/pipeline/test_end_to_end.py
    checks that every epoch has its metrics)"""
    import inspect

    from xpm_torch.learner import Learner

    source = inspect.getsource(Learner.iter_train)
    assert source.index("yield self.context.state\n") < source.index("metrics.report(")
    execute = inspect.getsource(Learner.execute)
    assert "self.context.epoch >= self.max_epochs" in execute and "break" in execute


# --- widen_type_variables: sibling configurations under one type variable

from typing import Generic, TypeVar  # noqa: E402

from experimaestro import Config, Param  # noqa: E402
from experimaestro.core.objects.config import ConfigInformation  # noqa: E402

from splade.workarounds.experimaestro import widen_type_variables  # noqa: E402


class Source(Config):
    """What a generic holder holds (as xpmir's HFConfig)"""


class HubSource(Source):
    """A sibling (as HFConfigID)"""


class TaskSource(Source):
    """Another sibling (as MNTPModel)"""


SourceT = TypeVar("SourceT", bound=Source)


class Holder(Config, Generic[SourceT]):
    """A generic configuration (as xpmir's HFModel[ConfigT])"""

    source: Param[SourceT]


class Pair(Config):
    first: Param[Holder]
    second: Param[Holder]


def pair():
    return Pair.C(
        first=Holder.C(source=HubSource.C()), second=Holder.C(source=TaskSource.C())
    )


def test_upstream_refuses_sibling_classes_under_one_type_variable(monkeypatch):
    check = ConfigInformation.check_typevar
    monkeypatch.setattr(
        ConfigInformation, "check_typevar", getattr(check, "__wrapped__", check)
    )
    with pytest.raises(TypeError, match="already set to"):
        pair()


def test_sibling_classes_are_bound_to_their_common_base():
    widen_type_variables()
    config = pair()
    bound = config.__xpm__.concrete_typevars[SourceT]
    assert bound is Source.XPMConfig
    assert (config.first.source, config.second.source) != (None, None)
