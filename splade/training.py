"""The training regimes of the papers

- ``margin_mse`` (DistilSPLADE-max, SPLADE++): MarginMSE (Hofstätter et
  al.) on teacher-scored (query, positive, negative) pairs: pairs of a
  teacher file, or drawn from the teacher scores of queries' candidates
  (:class:`splade.distillation.TeacherPairs`);
- ``kl_div`` (Efficient SPLADE): the KL divergence of the same pairs;
- ``contrastive_kl`` (Lion-SP): in-batch softmax cross-entropy plus the KL
  divergence of the same pairs (:mod:`splade.contrastive`);
- ``softmax_ce`` (SPLADE v2): softmax cross-entropy over the positive
  document, the query's negative and the other documents of the batch
  (in-batch negatives), on (query, positive, negative) triplets, or on
  queries with relevance judgements whose negatives are sampled from the
  BM25 top-k (hard negatives); on mined candidates (SPLADE-v3-Doc), over
  the positive and every negative of the batch (naver's ``contrastive``);
- ``kl_margin_mse`` (SPLADE-v3): KL divergence and MarginMSE on lists of
  one positive and ``learner.negatives`` negatives of mined candidates
  (:class:`splade.distillation.TeacherLists`,
  :class:`splade.distillation.ListwiseTrainer`).
"""

import re
from typing import List, Optional

from datamaestro import prepare_dataset
from datamaestro_ir.data import Adhoc, DocumentStore, TrainingTriplets
from datamaestro_ir.data.distillation import PairwiseDistillationSamples
from datamaestro_ir.transforms import (
    ShuffledTrainingTripletsLines,
    StoreTrainingTripletTopicAdapter,
)
from xpm_torch.trainers import LossTrainer
from xpmir.datasets.adapters import MemoryTopicStore
from xpmir.letor.distillation.pairwise import DistillationPairwiseTrainer
from xpmir.letor.processors import StoreHydrator

from splade.configuration import (
    Backbone,
    DocumentFlops,
    Learner,
    Loss,
    Mode,
    SPLADEConfiguration,
)
from splade.contrastive import ContrastiveDistillationTrainer
from splade.datasets import Datasets, datamaestro_problem, find, local_split
from splade.distillation import ListwiseTrainer, TeacherLists, TeacherPairs
from splade.losses import (
    DISTILLATION,
    LISTWISE,
    KLMarginMSELoss,
    PairwiseKLLoss,
    SoftmaxCrossEntropy,
)
from splade.teacher_scores import ScoredQueries, TeacherScores
from splade.workarounds.xpmir import (
    DistillationSamplesSampler,
    HardNegativesSampler,
    InBatchNegativesTrainer,
    ProcessedSampler,
    TripletsSampler,
)

#: The name of a decoder's normalization weight (no weight decay)
DECODER_NORM = "encoder.encoder.model.model.layers.0.input_layernorm.weight"

#: The losses that learn from teacher-scored pairs
TEACHER_LOSSES = (*DISTILLATION, Loss.CONTRASTIVE_KL)

#: loss -> the types of training data it can use
TRAINING_DATA = {
    Loss.MARGIN_MSE: (PairwiseDistillationSamples, TeacherScores, ScoredQueries),
    Loss.KL_DIV: (PairwiseDistillationSamples, TeacherScores, ScoredQueries),
    Loss.CONTRASTIVE_KL: (PairwiseDistillationSamples, TeacherScores, ScoredQueries),
    Loss.SOFTMAX_CE: (TrainingTriplets, Adhoc),
}


def problems(cfg: SPLADEConfiguration) -> List[str]:
    """Problems of the learner section, and of the training data for the
    loss (nothing is downloaded)"""
    if cfg.mode != Mode.TRAIN:
        return []
    learner, data = cfg.learner, cfg.data
    found = []
    if learner.early_stop % learner.validation_interval:
        found.append(
            "learner.early_stop: must be a multiple of learner.validation_interval"
        )
    processes = learner.devices * learner.num_nodes
    if learner.optimization.batch_size % processes:
        found.append(
            f"learner.optimization.batch_size: the global batch"
            f" ({learner.optimization.batch_size}) must be divisible by the"
            f" number of training processes, learner.devices x learner.num_nodes"
            f" = {processes}"
        )
    if Backbone(cfg.model.backbone) == Backbone.DECODER:
        patterns = learner.optimization.re_no_l2_regularization
        if not any(re.search(p, DECODER_NORM) for p in patterns):
            found.append(
                "learner.optimization.re_no_l2_regularization: matches no"
                " parameter of a decoder (Llama, Qwen and Mistral have no bias,"
                " and their RMSNorm weights are named like"
                f" {DECODER_NORM}): add 'norm\\.weight$'"
            )
    loss = Loss(learner.loss)
    if loss == Loss.KL_MARGIN_MSE and cfg.mining is None:
        found.append(
            "learner.loss: kl_margin_mse learns lists of mined candidates: set"
            " the mining section (see splade/splade_v3.yaml)"
        )
    pairs_mean = DocumentFlops(cfg.model.document_flops) == DocumentFlops.PAIRS_MEAN
    if pairs_mean and listwise(cfg):
        found.append(
            f"model.document_flops: pairs_mean needs (positive, negative) pairs,"
            f" and learner.loss={loss} on mined candidates learns lists: use batch"
        )
    if loss == Loss.KL_MARGIN_MSE and cfg.mining is not None:
        if not cfg.mining.first_stage:
            found.append(
                "mining.first_stage: learner.loss=kl_margin_mse learns mined lists"
                " and cannot train the first stage itself: give a trained model"
                " or a recipe (e.g. splade_pp_sd.yaml)"
            )
    if (cfg.mining is not None and cfg.mining.first_stage) or loss not in TRAINING_DATA:
        return found  # data.train is not read, or cannot be
    split = local_split(data.train)
    if split:
        if loss in TEACHER_LOSSES and data.local is not None:
            local = data.local.splits.get(split)
            if local is not None and local.teacher is None:
                found.append(
                    f"data.train: learner.loss={loss} needs teacher scores, and"
                    f" data.local.splits.{split}.teacher is not set (or use"
                    " learner.loss=softmax_ce, with BM25 hard negatives)"
                )
            if data.validation == data.train:
                found.append(
                    "data.validation: must be another split than data.train with"
                    f" learner.loss={loss} (teacher pairs are not held out)"
                )
        return found
    if split is None and not datamaestro_problem(data.train):
        train = prepare_dataset(find(data.train), download=False)
        expected = TRAINING_DATA[loss]
        if not isinstance(train, expected):
            found.append(
                f"data.train: {data.train} is a {type(train).__name__}, but"
                f" learner.loss={loss} needs one of"
                f" {', '.join(e.__name__ for e in expected)}"
            )
    return found


def listwise(cfg: SPLADEConfiguration) -> bool:
    """Whether the training learns lists (one positive and n negatives per
    query) of mined candidates"""
    loss = Loss(cfg.learner.loss)
    return loss == Loss.KL_MARGIN_MSE or (
        cfg.mining is not None and loss == Loss.SOFTMAX_CE
    )


def training_data(learner: Learner, datasets: Datasets, seed: int = 0):
    """The training dataset: teacher pairs, triplets or judged queries"""
    data = datasets.data
    if local_split(data.train):
        if Loss(learner.loss) == Loss.SOFTMAX_CE:
            return datasets.training_queries(seed)
        return datasets.teacher(data.train)
    return datasets.get(data.train)


def trainer(
    learner: Learner,
    datasets: Datasets,
    documents: DocumentStore,
    flops,
    seed: int,
    bm25=None,
    scored: Optional[ScoredQueries] = None,
) -> LossTrainer:
    """The trainer for ``learner.loss``, with the FLOPS regularizer as hook

    :param bm25: BM25 retriever, to sample hard negatives when training on
        queries with relevance judgements
    :param scored: scored training queries to learn from instead of
        ``data.train`` (the mined negatives of SPLADE++ SelfDistil)
    """
    data = datasets.data
    train = scored or training_data(learner, datasets, seed)
    common = dict(
        hooks=[flops],
        batch_size=learner.optimization.batch_size,
        num_workers=learner.num_workers,
    )

    loss = Loss(learner.loss)
    if loss in LISTWISE and isinstance(train, ScoredQueries):
        # SPLADE-v3: lists of one positive and n negatives per query
        lists = TeacherLists.C(
            scores=train.scores, qrels=train.qrels, negatives=learner.negatives
        )
        sampler = ProcessedSampler.C(
            sampler=lists,
            processors=[
                StoreHydrator.C(
                    documentstore=documents,
                    querystore=MemoryTopicStore.C(topics=train.topics),
                )
            ],
        )
        lossfn = LISTWISE[loss].C()
        if loss == Loss.KL_MARGIN_MSE:
            lossfn = KLMarginMSELoss.C(
                kl_weight=learner.kl_weight,
                margin_mse_weight=learner.margin_mse_weight,
                temperature=learner.temperature,
            )
        return ListwiseTrainer.C(sampler=sampler, lossfn=lossfn, **common)

    if loss in TEACHER_LOSSES:
        if isinstance(train, ScoredQueries):
            pairs = TeacherPairs.C(scores=train.scores, qrels=train.qrels)
            queries = train.topics
        elif isinstance(train, TeacherScores):
            qrels = datasets.get(data.train_qrels)
            pairs = TeacherPairs.C(scores=train, qrels=qrels)
            queries = datasets.get(data.train_queries)
        else:
            pairs = DistillationSamplesSampler.C(samples=train)
            if local_split(data.train):
                queries = datasets.get(data.train).topics
            else:
                queries = datasets.get(data.train_queries)
        sampler = ProcessedSampler.C(
            sampler=pairs,
            processors=[
                StoreHydrator.C(
                    documentstore=documents,
                    querystore=MemoryTopicStore.C(topics=queries),
                )
            ],
        )
        if loss == Loss.CONTRASTIVE_KL:
            return ContrastiveDistillationTrainer.C(
                sampler=sampler, lossfn=PairwiseKLLoss.C(), **common
            )
        return DistillationPairwiseTrainer.C(
            sampler=sampler, lossfn=DISTILLATION[loss].C(), **common
        )

    if isinstance(train, Adhoc):
        # softmax_ce on judged queries: the positive is a relevant document,
        # the negative one of the BM25 top-k that is not judged relevant
        sampler = HardNegativesSampler.C(dataset=train, retriever=bm25)
        return InBatchNegativesTrainer.C(
            sampler=sampler, lossfn=SoftmaxCrossEntropy.C(), **common
        )

    # softmax_ce: shuffled triplets, query text from the query store,
    # document text from the document store; when their number is known,
    # about what training uses (plus 10%) is sampled, uniformly, then
    # shuffled
    sampling = {}
    if data.train_count:
        optimization = learner.optimization
        needed = optimization.max_epochs * optimization.steps_per_epoch
        needed *= optimization.batch_size
        sampling["sample_rate"] = min(1.0, 1.1 * needed / data.train_count)
    triplets = ShuffledTrainingTripletsLines.C(
        seed=seed,
        data=StoreTrainingTripletTopicAdapter.C(
            data=train, store=datasets.get(data.train_queries)
        ),
        doc_ids=True,
        topic_ids=False,
        **sampling,
    ).submit()
    sampler = ProcessedSampler.C(
        sampler=TripletsSampler.C(source=triplets),
        processors=[StoreHydrator.C(documentstore=documents)],
    )
    return InBatchNegativesTrainer.C(
        sampler=sampler, lossfn=SoftmaxCrossEntropy.C(), **common
    )
