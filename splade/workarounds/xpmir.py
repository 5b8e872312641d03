"""Work-arounds for experimaestro-ir (``xpmir``) 1.5.0

Each class keeps the task identifier it had when it was defined in
``splade/workarounds.py`` (``__xpmid__``), so that finished tasks are reused.
Tests of the upstream behaviour: ``tests/test_workarounds.py``.
"""

import logging
from pathlib import Path
from typing import List, Optional

import torch
from experimaestro import Param, field
from xpm_torch.module import initialized
from xpmir.letor.distillation.pairwise import DistillationPairwiseLoss
from xpmir.letor.samplers import PairwiseModelBasedSampler
from xpmir.measures import Measure
from xpmir.rankers import ScoredDocument
from xpmir.rankers.full import FullRetrieverRescorer as _FullRetrieverRescorer
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import InputType, TextEncoderBase, TextsRepresentationOutput
from xpmir.text.huggingface import HFTokenizerBase


class FullRetrieverRescorer(_FullRetrieverRescorer):
    """Scores every document of a (small) collection with a dual model

    xpmir 1.5.0's ``FullRetrieverRescorer.score`` (xpmir/rankers/full.py:66)
    calls ``scorer.score_product(queries, documents, None)``, while
    ``xpmir.neural.dual.Dense.score_product`` takes two arguments: every
    validation with a SPLADE model fails with a ``TypeError``. This version
    scores all the queries against the batch of documents in one product.
    """

    __xpmid__ = "splade.workarounds.fullretrieverrescorer"

    def score(self, documents, queries, scored_documents, pbar):
        encoded = self.scorer.encode_documents(documents)
        scores = self.scorer.score_product(queries.to(encoded.value.device), encoded)
        scores = scores.detach().cpu()
        for doc_ix, document in enumerate(documents):
            scored_documents.append(
                [
                    ScoredDocument(document, score)
                    for score in scores[:, doc_ix].tolist()
                ]
            )
        pbar.update(scores.numel())


class BinaryQueryEncoder(TextEncoderBase[InputType, TextsRepresentationOutput]):
    """SPLADE-doc's query encoder: the binary bag of the query's tokens

    xpmir 1.5.0's ``OneHotHuggingFaceEncoder`` (used by ``spladeV2_doc``)
    (xpmir/text/huggingface/encoders.py:112) still takes strings and returns a
    bare tensor, while the scorers and the ``SparseRetriever`` of the same
    release give records and expect a ``TextsRepresentationOutput``:
    SPLADE-doc can be neither trained nor evaluated with it. This encoder
    uses the document encoder's tokenizer.
    """

    __xpmid__ = "splade.workarounds.binaryqueryencoder"

    tokenizer: Param[HFTokenizerBase[InputType]]
    """The tokenizer (shared with the document encoder)"""

    maxlen: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Maximum number of tokens of a query"""

    def __initialize__(self):
        super().__initialize__()
        self.tokenizer.initialize()
        hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        self._special = sorted(set(hf_tokenizer.all_special_ids))
        self._dimension = len(hf_tokenizer)
        # No parameter is learned, but the module must know its device
        self.register_buffer("_device", torch.zeros(0), persistent=False)

    @property
    def dimension(self):
        return self._dimension

    def static(self):
        return True

    @initialized
    def forward(self, texts: List[InputType]) -> TextsRepresentationOutput:
        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        value = torch.zeros(len(texts), self.dimension, device=self._device.device)
        ids = tokenized.ids.to(value.device)
        value.scatter_(1, ids, 1.0)
        value[:, self._special] = 0
        return TextsRepresentationOutput(value, tokenized)

    def save_model(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)

    def load_model(self, path: Path):
        pass


class HardNegativesSampler(PairwiseModelBasedSampler):
    """Pairs of (relevant, BM25-retrieved non-relevant) documents of judged
    queries, as xpmir's ``PairwiseModelBasedSampler``

    In xpmir 1.5.0, ``PairwiseModelBasedSampler.sample``
    (xpmir/letor/samplers/__init__.py:267) returns ``ScoredDocument`` objects as
    the positive and negative documents, where trainers expect document
    records (``{"id": ..., "text_item": ...}``): training fails with
    "'ScoredDocument' object is not subscriptable" when the documents are
    tokenized. This one gives the records.
    """

    __xpmid__ = "splade.workarounds.hardnegativessampler"

    def sample(self, samples):
        return PairwiseModelBasedSampler.sample(self, samples).document


class _NoTraceback(logging.Filter):
    """Drops the traceback record of a configuration error, or of failed
    jobs (their own logs have the traceback)"""

    def filter(self, record: logging.LogRecord) -> bool:
        from experimaestro.scheduler.experiment import FailedExperiment

        from splade.configuration import ConfigurationError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (ConfigurationError, FailedExperiment))


def report_configuration_errors_without_traceback():
    """Makes a :class:`~splade.configuration.ConfigurationError` of the
    experiment (or its failed jobs) a one-line report, without a Python
    traceback

    xpmir 1.5.0's ``IRExperimentHelper.run`` (xpmir/experiments/ir.py:57)
    logs every exception of the experiment function with its traceback
    (``logging.exception("Error while running the experiment")``), then
    raises a ``HandledException``, which experimaestro reports in one line
    (``Experiment failed: ConfigurationError: <key>: <problem>``) before
    exiting with status 1. A configuration error is the user's, not a bug:
    this filter of the root logger drops the traceback record of those.
    """
    root = logging.getLogger()
    if not any(isinstance(f, _NoTraceback) for f in root.filters):
        root.addFilter(_NoTraceback())


class PairwiseKLLoss(DistillationPairwiseLoss):
    """KL divergence between the teacher's and the student's distributions
    over the (positive, negative) pair of each query: Efficient SPLADE's
    distillation loss (Lassance and Clinchant, SIGIR 2022)

    xpmir 1.5.0's ``DistillationKLLoss.compute``
    (xpmir/letor/distillation/pairwise.py:93-104) stacks
    ``scores[:, 0].unsqueeze(0)``: its softmax runs over the 2B scores of the
    batch at once, and the teacher tensor (1 x 2B x 1) broadcasts the KL to
    (1, 2B, 2B); the loss it returns has 2B values, and xpm_torch's trainer
    fails when it adds it to the total loss. Here the softmax is over each
    query's two scores.
    """

    NAME = "pairwise-KL"

    def compute(self, student_scores, teacher_scores, info):
        return torch.nn.functional.kl_div(
            torch.log_softmax(student_scores, dim=1),
            torch.log_softmax(teacher_scores, dim=1),
            log_target=True,
            reduction="batchmean",
        )


class RelevanceMeasure(Measure):
    """An xpmir measure whose minimum relevance (``rel``) is applied

    xpmir 1.5.0's ``Measure`` has a ``rel`` parameter (the minimum relevance
    of a relevant document), but its ``__call__`` (xpmir/measures.py:22-26)
    builds the ir_measures measure without it: binary measures always count
    rel >= 1. This one gives it to the measures that take it (``RR``, ``R``,
    ``AP``, ``P``...: ``RR(rel=2)@10``; nDCG uses the graded judgements).
    """

    def __call__(self):
        import ir_measures

        measure = ir_measures.parse_measure(self.identifier)
        if "rel" in measure.SUPPORTED_PARAMS:
            measure = measure(rel=self.rel)
        if self.cutoff is not None:
            measure = measure @ self.cutoff
        return measure


def cross_scorer(hf_id: str, max_length: int):
    """xpmir's cross-encoder (``HFCrossScorer``) of a Hugging Face sequence
    classification model (hub id or folder), and its initialization tasks

    xpmir 1.5.0's ``hf_cross_scorer`` (xpmir/neural/huggingface.py:717)
    reads the model's configuration (its ``config.json``, from the hub for a
    hub id) to get a default maximum length, while the experiment is built:
    a dry run without network, or a driver machine without network whose
    tasks run elsewhere, fails. This builds the same configuration with the
    maximum length given.
    """
    from xpmir.neural.huggingface import (
        HFCrossScorer,
        HFQueryDocTokenizer,
        InitCEFromHFID,
    )
    from xpmir.text.huggingface.base import HFConfigID, HFSequenceClassification

    encoder = HFSequenceClassification.C(config=HFConfigID.C(hf_id=hf_id))
    tokenizer = HFQueryDocTokenizer.C(model_id=hf_id, max_length=max_length)
    scorer = HFCrossScorer.C(encoder=encoder, tokenizer=tokenizer)
    return scorer, [InitCEFromHFID.C(model=encoder)]
