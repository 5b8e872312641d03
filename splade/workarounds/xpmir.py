"""Work-arounds for experimaestro-ir (``xpmir``) 1.5.0

Each class keeps the task identifier it had when it was defined in
``splade/workarounds.py`` (``__xpmid__``), so that finished tasks are reused.
Tests of the upstream behaviour: ``tests/unit/test_workarounds.py``.
"""

import itertools
import logging
import sys

import numpy as np
import torch
from datamaestro_ir.data import SimpleTextItem
from datamaestro_ir.data.distillation import PairwiseDistillationSamplesTSV
from xpm_torch.datasets import InfiniteDataset
from xpm_torch.trainers.context import TrainerContext
from xpmir.letor.distillation.samplers import DistillationPairwiseSampler
from xpmir.letor.records import PairwiseItem
from xpmir.letor.samplers import PairwiseModelBasedSampler, TripletBasedSampler
from xpmir.letor.samplers.adapters import BufferedProcessingDataset, SamplerAdapter
from xpmir.letor.trainers.batchwise import BatchwiseTrainer
from xpmir.measures import Measure
from xpmir.neural.dual import DualVectorListener, DualVectorScorerListener
from xpmir.neural.splade import SpladeScorer
from xpmir.rankers import ScoredDocument
from xpmir.rankers.full import FullRetrieverRescorer as _FullRetrieverRescorer

from splade.distributed import gather_rows
from splade.workarounds.xpm_torch import InterleavedLines, InterleavedShards


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

    def sample(self, samples, random=None):
        """The record of one of the ``(docid, relevance, score)`` samples"""
        if random is None:
            return PairwiseModelBasedSampler.sample(self, samples).document
        while True:
            docid, _, _ = samples[random.randint(0, len(samples))]
            document = self.document(docid)
            if document["text_item"].text is not None:
                return document

    # Several data loaders (workers, training processes)
    #
    # xpmir 1.5.0's PairwiseModelBasedSampler.as_dataset ignores the shard it
    # is asked for (xpmir/letor/samplers/__init__.py:295-296): it draws from
    # the sampler's random state, the same in every data loader worker and
    # training process, so that they all give the same pairs (and the data
    # loader, which has no state to save, starts again at a restart). Here
    # pair i of the stream is drawn from its own random state (the sampler's
    # seed and i), and shards take turns (InterleavedShards): the stream is
    # the same whatever the number of workers and processes, and resumes
    # where it was.

    def initialize(self, random):
        super().initialize(random)
        self._seed = int(random.randint(2**31))

    def pair(self, index: int) -> PairwiseItem:
        """Pair ``index`` of the stream"""
        random = np.random.RandomState([self._seed, index])
        title, positives, negatives = self.topics[random.randint(0, len(self.topics))]
        return PairwiseItem(
            {"text_item": SimpleTextItem(title)},
            self.sample(positives, random),
            self.sample(negatives, random),
        )

    def as_dataset(self):
        return InfiniteDataset(_SampledPairs(self))


class _SampledPairs(InterleavedShards):
    """The pairs of a :class:`HardNegativesSampler`, by number"""

    def __init__(self, sampler: HardNegativesSampler):
        self.sampler = sampler
        super().__init__()

    def raw(self, state):
        for index in itertools.count(state["next"]):
            yield {"next": index + 1}, index

    def make(self, index: int) -> PairwiseItem:
        return self.sampler.pair(index)


class DistillationSamplesSampler(DistillationPairwiseSampler):
    """xpmir's ``DistillationPairwiseSampler``, whose TSV files are shared
    between data loaders line by line (:class:`InterleavedLines`) instead of
    byte ranges

    xpmir 1.5.0 reads a ``PairwiseDistillationSamplesTSV`` with xpm_torch's
    ``LineFileDataset`` (xpmir/letor/distillation/samplers.py:29-33), which
    loses lines at the boundaries of the ranges and whose state only fits
    rank 0 (see :class:`InterleavedLines`). Other sample sets are read as
    xpmir does.
    """

    __xpmid__ = "splade.workarounds.distillationsamplessampler"

    def as_dataset(self):
        if isinstance(self.samples, PairwiseDistillationSamplesTSV):
            lines = InterleavedLines(self.samples.path, self.samples._parse_line)
            return InfiniteDataset(lines)
        return super().as_dataset()


class TripletsSampler(TripletBasedSampler):
    """xpmir's ``TripletBasedSampler``, whose data loader resumes where it
    was

    xpmir 1.5.0's triplets dataset shares the triplets between data loaders
    in turns, as :class:`InterleavedShards` does, but has no state
    (xpmir/letor/samplers/__init__.py:336-340): a restarted learner starts
    the triplets again from the first one. Here, the triplets consumed
    before the checkpoint are skipped.
    """

    __xpmid__ = "splade.workarounds.tripletssampler"

    def as_dataset(self):
        return InfiniteDataset(_Triplets(self.source))


class _Triplets(InterleavedShards):
    def __init__(self, source):
        self.source = source
        super().__init__()

    def raw(self, state):
        start = state["next"]
        triplets = itertools.islice(self.source.iter(), start, None)
        for index, triplet in enumerate(triplets, start + 1):
            yield {"next": index}, triplet

    def make(self, triplet) -> PairwiseItem:
        return PairwiseItem(*triplet)


class ProcessedSampler(SamplerAdapter):
    """xpmir's ``SamplerAdapter``, whose data loader state is the one of the
    last record it gave

    xpmir 1.5.0's ``BufferedProcessingDataset`` reads ``buffer_size`` (64)
    records ahead, to process them at once (e.g. fetch the documents' text),
    and gives its inner dataset's state as its own
    (xpmir/letor/samplers/adapters.py:34-48): a checkpoint taken between two
    buffers skips, when training resumes, the records of the buffer not yet
    given (e.g. with 2 processes of 16 records for 50 steps, 32 records per
    process).
    """

    __xpmid__ = "splade.workarounds.processedsampler"

    def as_dataset(self):
        return _ProcessedRecords(
            self.sampler.as_dataset(), self.processors, self.buffer_size
        )


class _ProcessedRecords(BufferedProcessingDataset):
    _state = None

    def iter_shard(self, shard_id: int, num_shards: int):
        records, states = [], []
        for record in self.inner.iter_shard(shard_id, num_shards):
            records.append(record)
            states.append(self.inner.state_dict())
            if len(records) >= self.buffer_size:
                yield from self._give(records, states)
                records, states = [], []
        if records:
            yield from self._give(records, states)

    def _give(self, records, states):
        processed = self._flush(records)
        assert len(processed) == len(states), "processors must keep the records"
        for record, state in zip(processed, states, strict=True):
            self._state = state
            yield record

    def state_dict(self):
        return self.inner.state_dict() if self._state is None else self._state

    def load_state_dict(self, state):
        self._state = None
        self.inner.load_state_dict(state)


class InBatchNegativesScorer(SpladeScorer):
    """xpmir's SPLADE scorer, whose in-batch negatives are the documents of
    every training process

    xpmir 1.5.0's ``Dense.score_product`` (xpmir/neural/dual.py:156-176)
    multiplies the ``fabric.all_gather`` outputs of queries and documents
    as matrices, while they have a dimension more (processes x batch x
    vocabulary) with more than one process: the product fails (and the
    scores would not fit the relevance matrix, which stays the process's).
    Here a process scores its queries against its own documents followed by
    the other processes' (gathered with their gradients): its queries have
    the in-batch negatives one process with the whole batch would give them.
    With one process, this is xpmir's scorer.
    """

    __xpmid__ = "splade.workarounds.inbatchnegativesscorer"

    def score_product(self, queries, documents):
        info = TrainerContext.current()
        fabric = info.fabric if info is not None else None
        if fabric is None or fabric.world_size == 1:
            return super().score_product(queries, documents)
        gathered, offset = gather_rows(fabric, documents.value)
        local = documents.value
        others = torch.cat(
            [gathered[:offset], gathered[offset + local.shape[0] :]], dim=0
        )
        scores = queries.value @ torch.cat([local, others], dim=0).T
        for hook in info.hooks(DualVectorListener):
            hook(info, queries, documents)
        for hook in info.hooks(DualVectorScorerListener):
            hook(info, queries, documents, scores)
        return scores


class InBatchNegativesTrainer(BatchwiseTrainer):
    """xpmir's ``BatchwiseTrainer`` whose relevance matrix covers the
    documents of every process (:class:`InBatchNegativesScorer`): the
    process's own documents come first, the others are negatives

    xpmir 1.5.0's ``BatchwiseTrainer.train_batch``
    (xpmir/letor/trainers/batchwise.py:80-98) reshapes the scores to the
    process's relevance matrix (queries x its own documents). With one
    process, this is xpmir's trainer.
    """

    __xpmid__ = "splade.workarounds.inbatchnegativestrainer"

    def train_batch(self, inputs):
        batch = inputs["records"]
        tokenized = inputs.get("tokenized_records")
        if tokenized is not None:
            scores = self.model(batch, tokenized=tokenized)
        else:
            scores = self.model(batch)
        if torch.isnan(scores).any() or torch.isinf(scores).any():
            self.logger.error("nan or inf relevance score detected. Aborting.")
            sys.exit(1)
        relevances = batch.relevances
        queries, local = relevances.shape
        documents = scores.numel() // queries
        if documents > local:
            others = relevances.new_zeros(queries, documents - local)
            relevances = torch.cat([relevances, others], dim=1)
        scores = scores.reshape(queries, documents)
        self.lossfn.process(scores, relevances.to(scores.device), self.context)


class _NoTraceback(logging.Filter):
    """Drops the traceback record of the user's errors, or of failed jobs
    (their own logs have the traceback)"""

    def __init__(self, errors):
        super().__init__()
        self.errors = errors

    def filter(self, record: logging.LogRecord) -> bool:
        from experimaestro.scheduler.experiment import FailedExperiment

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (*self.errors, FailedExperiment))


def report_without_traceback(*errors: type):
    """Makes an error of one of these types (e.g. the package's
    ``ConfigurationError``) raised by the experiment, or its failed jobs, a
    one-line report, without a Python traceback

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
        root.addFilter(_NoTraceback(errors))


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
