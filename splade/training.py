"""The two training regimes of the papers

- ``margin_mse`` (DistilSPLADE-max): MarginMSE (Hofstätter et al.) on
  teacher-scored (query, positive, negative) pairs;
- ``softmax_ce`` (SPLADE v2): softmax cross-entropy over the positive
  document, the query's negative and the other documents of the batch
  (in-batch negatives), on (query, positive, negative) triplets, or on
  queries with relevance judgements whose negatives are sampled from the
  BM25 top-k (hard negatives).
"""

from datamaestro_ir.data import Adhoc, DocumentStore, TrainingTriplets
from datamaestro_ir.data.distillation import PairwiseDistillationSamples
from datamaestro_ir.transforms import (
    ShuffledTrainingTripletsLines,
    StoreTrainingTripletTopicAdapter,
)
from xpm_torch.losses.batchwise import SoftmaxCrossEntropy
from xpm_torch.trainers import LossTrainer
from xpmir.datasets.adapters import MemoryTopicStore
from xpmir.letor.distillation.pairwise import (
    DistillationPairwiseTrainer,
    MSEDifferenceLoss,
)
from xpmir.letor.distillation.samplers import DistillationPairwiseSampler
from xpmir.letor.processors import StoreHydrator
from xpmir.letor.samplers import TripletBasedSampler
from xpmir.letor.samplers.adapters import SamplerAdapter
from xpmir.letor.trainers.batchwise import BatchwiseTrainer

from splade.configuration import Data, Learner
from splade.data import LOCAL, dataset, local_data, local_split, training_queries
from splade.errors import ConfigurationError
from splade.workarounds import HardNegativesSampler

#: loss name -> the types of training data it can use
TRAINING_DATA = {
    "margin_mse": (PairwiseDistillationSamples,),
    "softmax_ce": (TrainingTriplets, Adhoc),
}


def training_data(learner: Learner, data: Data, seed: int = 0):
    """The training dataset, checked against the loss"""
    if learner.loss not in TRAINING_DATA:
        raise ConfigurationError(
            f"learner.loss: {learner.loss!r} is not one of {sorted(TRAINING_DATA)}"
        )
    if data.train.startswith(f"{LOCAL}:"):
        split = local_split(data, data.train)
        if learner.loss == "softmax_ce":
            return training_queries(data, seed)
        if data.local.splits[split].teacher is None:
            raise ConfigurationError(
                f"data.train: learner.loss=margin_mse needs teacher scores, and"
                f" data.local.splits.{split}.teacher is not set (or use"
                " learner.loss=softmax_ce, with BM25 hard negatives)"
            )
        if data.validation == data.train:
            raise ConfigurationError(
                "data.validation: must be another split than data.train with"
                " learner.loss=margin_mse (teacher pairs are not held out)"
            )
        return local_data(data.local).teacher[split]
    train = dataset(data.train, data)
    expected = TRAINING_DATA[learner.loss]
    if not isinstance(train, expected):
        raise ConfigurationError(
            f"data.train: {data.train} is a {type(train).__name__}, but"
            f" learner.loss={learner.loss} needs one of"
            f" {', '.join(e.__name__ for e in expected)}"
        )
    return train


def trainer(
    learner: Learner,
    data: Data,
    documents: DocumentStore,
    flops,
    seed: int,
    bm25=None,
) -> LossTrainer:
    """The trainer for ``learner.loss``, with the FLOPS regularizer as hook

    :param bm25: BM25 retriever, to sample hard negatives when training on
        queries with relevance judgements
    """
    train = training_data(learner, data, seed)
    common = dict(
        hooks=[flops],
        batch_size=learner.optimization.batch_size,
        num_workers=learner.num_workers,
    )

    if learner.loss == "margin_mse":
        if data.train.startswith(f"{LOCAL}:"):
            queries = dataset(data.train, data).topics
        else:
            queries = dataset(data.train_queries, data)
        sampler = SamplerAdapter.C(
            sampler=DistillationPairwiseSampler.C(samples=train),
            processors=[
                StoreHydrator.C(
                    documentstore=documents,
                    querystore=MemoryTopicStore.C(topics=queries),
                )
            ],
        )
        return DistillationPairwiseTrainer.C(
            sampler=sampler, lossfn=MSEDifferenceLoss.C(), **common
        )

    if isinstance(train, Adhoc):
        # softmax_ce on judged queries: the positive is a relevant document,
        # the negative one of the BM25 top-k that is not judged relevant
        sampler = HardNegativesSampler.C(dataset=train, retriever=bm25)
        return BatchwiseTrainer.C(
            sampler=sampler, lossfn=SoftmaxCrossEntropy.C(), **common
        )

    # softmax_ce: shuffled triplets, query text from the query store,
    # document text from the document store
    triplets = ShuffledTrainingTripletsLines.C(
        seed=seed,
        data=StoreTrainingTripletTopicAdapter.C(
            data=train, store=dataset(data.train_queries, data)
        ),
        doc_ids=True,
        topic_ids=False,
    ).submit()
    sampler = SamplerAdapter.C(
        sampler=TripletBasedSampler.C(source=triplets),
        processors=[StoreHydrator.C(documentstore=documents)],
    )
    return BatchwiseTrainer.C(sampler=sampler, lossfn=SoftmaxCrossEntropy.C(), **common)
