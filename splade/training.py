"""The two training regimes of the papers

- ``margin_mse`` (DistilSPLADE-max): MarginMSE (Hofstätter et al.) on
  teacher-scored (query, positive, negative) pairs;
- ``softmax_ce`` (SPLADE v2): softmax cross-entropy over the positive
  document, the query's negative and the other documents of the batch
  (in-batch negatives), on (query, positive, negative) triplets.
"""

from datamaestro_ir.data import DocumentStore, TrainingTriplets
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
from splade.data import dataset
from splade.errors import ConfigurationError

#: loss name -> the type of training data it needs
TRAINING_DATA = {
    "margin_mse": PairwiseDistillationSamples,
    "softmax_ce": TrainingTriplets,
}


def training_data(learner: Learner, data: Data):
    """The training dataset, checked against the loss"""
    if learner.loss not in TRAINING_DATA:
        raise ConfigurationError(
            f"learner.loss: {learner.loss!r} is not one of {sorted(TRAINING_DATA)}"
        )
    train = dataset(data.train)
    expected = TRAINING_DATA[learner.loss]
    if not isinstance(train, expected):
        raise ConfigurationError(
            f"data.train: {data.train} is a {type(train).__name__}, but"
            f" learner.loss={learner.loss} needs a {expected.__name__}"
        )
    return train


def trainer(
    learner: Learner, data: Data, documents: DocumentStore, flops, seed: int
) -> LossTrainer:
    """The trainer for ``learner.loss``, with the FLOPS regularizer as hook"""
    train = training_data(learner, data)
    queries = dataset(data.train_queries)
    common = dict(
        hooks=[flops],
        batch_size=learner.optimization.batch_size,
        num_workers=learner.num_workers,
    )

    if learner.loss == "margin_mse":
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

    # softmax_ce: shuffled triplets, query text from the query store,
    # document text from the document store
    triplets = ShuffledTrainingTripletsLines.C(
        seed=seed,
        data=StoreTrainingTripletTopicAdapter.C(data=train, store=queries),
        doc_ids=True,
        topic_ids=False,
    ).submit()
    sampler = SamplerAdapter.C(
        sampler=TripletBasedSampler.C(source=triplets),
        processors=[StoreHydrator.C(documentstore=documents)],
    )
    return BatchwiseTrainer.C(sampler=sampler, lossfn=SoftmaxCrossEntropy.C(), **common)
