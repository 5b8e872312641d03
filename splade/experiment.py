# SPLADE experiments, following
#
# - SPLADE v2: Sparse Lexical and Expansion Model for Information Retrieval
#   (Formal, Lassance, Piwowarski, Clinchant), 2021, arXiv:2109.10086
# - From Distillation to Hard Negative Sampling: Making Sparse Neural IR
#   Models More Effective (Formal, Lassance, Piwowarski, Clinchant), SIGIR 2022
# - Towards Effective and Efficient Sparse Neural Information Retrieval
#   (Formal, Lassance, Piwowarski, Clinchant), TOIS 2023
#
# Run with: experimaestro run-experiment splade/debug.yaml

from attrs import evolve
from experimaestro import RunMode
from experimaestro.experiments.grid import generate_grid
from experimaestro.launcherfinder import find_launcher
from xpm_torch import Random
from xpm_torch.learner import Learner
from xpmir.datasets.adapters import RetrieverBasedCollection
from xpmir.experiments.ir import IRExperimentHelper, ir_experiment
from xpmir.index.bow import BOWRetriever, BOWSparseRetrieverIndexBuilder
from xpmir.papers.results import PaperResults
from xpmir.rankers.standard import BM25

from splade.checks import check
from splade.configuration import Mode, SPLADEConfiguration
from splade.datasets import Datasets
from splade.devices import fabric, learner_launcher
from splade.engines import sparse_retriever
from splade.evaluation import PerDocuments, requirements, test_collections
from splade.mining import mine
from splade.models import splade_model
from splade.results import tagged
from splade.shards import MergeShards, index_builders
from splade.training import trainer
from splade.workarounds import check_private_hooks
from splade.workarounds.experimaestro import keep_done_markers, raise_if_failed
from splade.workarounds.xpm_torch import (
    LastEpochMetrics,
    StaleCheckpointsCleaner,
    SynchronisedValidationListener,
)
from splade.workarounds.xpmir import (
    FullRetrieverRescorer,
    report_configuration_errors_without_traceback,
)


@ir_experiment()
def run(helper: IRExperimentHelper, cfg: SPLADEConfiguration) -> PaperResults:
    """SPLADE: sparse lexical and expansion model for first-stage retrieval"""
    check_private_hooks()
    keep_done_markers()
    report_configuration_errors_without_traceback()
    # One configuration per variant of the sweep (grid_search), if any
    variants, sweeps = generate_grid(cfg)
    datasets = Datasets(cfg.data)
    check(cfg, datasets, variants, downloads=helper.xp.run_mode == RunMode.NORMAL)
    bm25_launcher = find_launcher(cfg.bm25.requirements)

    # --- Data: the training documents, and the test collections (each is
    # searched in an index of its own documents, shared by the collections
    # that have the same ones)
    documents = datasets.get(cfg.data.documents)
    max_docs = cfg.indexation.max_docs
    tests = test_collections(datasets, cfg.retrieval.measures, max_docs)

    # --- BM25 baseline (impact-index bag-of-words index)
    bm25_indices = PerDocuments(
        lambda documents, key: BOWSparseRetrieverIndexBuilder.C(
            documents=documents, max_docs=max_docs
        ).submit(launcher=launchers(cfg, "bm25")(key))
    )

    def bm25(documents, key=None, topk=cfg.retrieval.topk):
        return BOWRetriever.C(
            index=bm25_indices(documents, key),
            model=BM25.C(k1=cfg.bm25.k1, b=cfg.bm25.b),
            topk=topk,
        )

    tests.evaluate({"model": "bm25"}, bm25, launchers(cfg, "bm25"))

    # --- Validation collection: BM25 top-k documents of validation queries
    validation = None
    if cfg.mode == Mode.TRAIN:
        validation = RetrieverBasedCollection.C(
            dataset=datasets.validation_queries(cfg.seed, bm25_launcher),
            retrievers=[bm25(documents, topk=cfg.bm25.validation_topk)],
        ).submit(launcher=bm25_launcher)
        validation.documents.in_memory = True

    # --- SPLADE, once per variant
    learners = []  # (learner, tags, best checkpoint)
    for variant, sweep in zip(variants, sweeps, strict=True):
        tags = {"model": "splade", **sweep}
        device = fabric(variant.precision)

        # SPLADE model and its FLOPS regularization
        scorer, flops, init_tasks = splade_model(variant.model)

        # Zero-shot: the model is evaluated as it is
        if variant.mode == Mode.ZERO_SHOT:
            evaluated = [(None, init_tasks, tags)]
        else:
            training = dict(
                datasets=datasets,
                documents=documents,
                validation=validation,
                negatives=bm25(documents, topk=variant.bm25.negatives_topk),
            )
            evaluated, scored = [], None

            # SPLADE++ SelfDistil: a first stage (a given model, or one trained
            # here on the recipe's data) retrieves hard negatives for the
            # training queries, a teacher scores them, the model learns them
            if variant.mining is not None:
                if variant.mining.first_stage:
                    given = evolve(variant.model, base_hf_id=variant.mining.first_stage)
                    first, _, first_tasks = splade_model(given)
                else:
                    first_tags = {**tags, "model": "splade-first-stage"}
                    first_best, first_learner = train(
                        variant, first_tags, scorer, flops, init_tasks, **training
                    )
                    first, first_tasks = scorer, [first_best]
                    evaluated.append((first_best, first_tasks, first_tags))
                    learners.append((first_learner, first_tags, first_best))
                index = splade_indices(variant, first, first_tasks, device)(documents)
                scored = mine(variant, datasets, first, index, first_tasks, device)
                if variant.mining.init_from_first_stage:
                    scorer, init_tasks = first, first_tasks

            best, learner = train(
                variant, tags, scorer, flops, init_tasks, scored=scored, **training
            )
            learners.append((learner, tags, best))
            evaluated.append((best, [best], tags))
            if variant.retrieval.evaluate_untrained:
                evaluated.append(
                    (None, init_tasks, {**tags, "model": "splade-untrained"})
                )

        # Sparse index of each test collection's documents, retrieval with
        # the query encoder, evaluation (also of the model before training,
        # if asked)
        for checkpoint, model_init_tasks, model_tags in evaluated:
            indices = splade_indices(variant, scorer, model_init_tasks, device)
            tests.evaluate(
                model_tags,
                splade_retrievers(variant, scorer, indices, bm25_launcher),
                launchers(variant, "retrieval"),
                index_of=indices,
                checkpoint=checkpoint,
                efficiency_queries=variant.retrieval.efficiency_queries,
                init_tasks=model_init_tasks,
                fabric_config=device,
            )

    # Trained models and their training curves (TensorBoard)
    models, logs = {}, {}
    for learner, model_tags, best in learners:
        others = [f"{k}={v}" for k, v in model_tags.items() if k != "model"]
        name = "-".join([model_tags["model"], *others])
        models[name], logs[name] = best, learner.logpath
        if helper.xp.run_mode == RunMode.NORMAL:
            helper.tensorboard_service.add(learner, learner.logpath)

    if helper.xp.run_mode == RunMode.NORMAL:
        raise_if_failed(helper.xp)
        tests.print_summary()
    return PaperResults(models=models, evaluations=tests, tb_logs=logs)


def splade_indices(cfg: SPLADEConfiguration, scorer, init_tasks, device):
    """The SPLADE index of each collection of documents, for the engine:
    encoded by one task, or by ``indexation.shards`` tasks whose indices a
    CPU task merges"""

    def index(documents, key):
        builders = index_builders(
            cfg.retrieval.engine,
            cfg.indexation,
            documents=documents,
            encoder=scorer.encoder,
            batch_size=cfg.indexation.batch_size,
            max_docs=cfg.indexation.max_docs,
            fabric_config=device,
        )
        launcher = launchers(cfg, "indexation")(key)
        indices = [
            builder.submit(launcher=launcher, init_tasks=init_tasks)
            for builder in builders
        ]
        if len(indices) == 1:
            return indices[0]
        merged = MergeShards.C(shards=indices, documents=documents)
        return merged.submit(launcher=launchers(cfg, "bm25")(key))

    return PerDocuments(index)


def splade_retrievers(cfg: SPLADEConfiguration, scorer, indices, launcher):
    """``(documents, key) -> retriever`` of the SPLADE model with the chosen
    engine (its index conversions, if any, are submitted to ``launcher``)"""

    def retriever(documents, key):
        return sparse_retriever(
            cfg.retrieval.engine,
            index=indices(documents, key),
            encoder=scorer.query_encoder or scorer.encoder,
            topk=cfg.retrieval.topk,
            batch_size=cfg.retrieval.batch_size,
            launcher=launcher,
        )

    return retriever


def launchers(cfg: SPLADEConfiguration, section: str):
    """``key -> launcher`` of the tasks of a test collection (``section``:
    ``bm25``, ``indexation`` or ``retrieval``)"""
    return lambda key: find_launcher(requirements(cfg, section, key))


def train(
    cfg: SPLADEConfiguration,
    tags,
    scorer,
    flops,
    init_tasks,
    *,
    datasets,
    documents,
    validation,
    negatives,
    scored=None,
):
    """Trains SPLADE on ``learner.devices`` processes per node on
    ``learner.num_nodes`` nodes (data parallelism); returns its best
    checkpoint (validation RR@10) and the learner (submitted)

    :param scored: scored queries to learn from instead of ``data.train``
        (the mined negatives of SPLADE++ SelfDistil)
    """
    # Validation: keeps the checkpoint with the best RR@10 (the decision to
    # stop early is rank 0's, with several training processes)
    validation_listener = SynchronisedValidationListener.C(
        id="bestval",
        dataset=validation,
        retriever=FullRetrieverRescorer.C(
            documents=validation.documents,
            scorer=scorer,
            batchsize=cfg.indexation.batch_size,
        ),
        metrics={"RR@10": True, "nDCG@10": False},
        validation_interval=cfg.learner.validation_interval,
        early_stop=cfg.learner.early_stop,
    )

    # Training: MarginMSE distillation from teacher scores, or softmax
    # cross-entropy with in-batch negatives (learner.loss)
    optimization = cfg.learner.optimization
    learner = tagged(
        Learner.C(
            random=Random.C(seed=cfg.seed),
            trainer=trainer(
                cfg.learner,
                datasets,
                documents,
                flops,
                cfg.seed,
                bm25=negatives,
                scored=scored,
            ),
            model=scorer,
            optimizers=optimization.optimizer,
            max_epochs=optimization.max_epochs,
            steps_per_epoch=optimization.steps_per_epoch,
            # the cleaner bounds the checkpoints kept after a kill
            listeners=[
                validation_listener,
                StaleCheckpointsCleaner.C(id="cleaner"),
                LastEpochMetrics.C(id="last-epoch-metrics"),
            ],
            fabric_config=fabric(
                cfg.precision, cfg.learner.devices, cfg.learner.num_nodes
            ),
        ),
        tags,
    )
    outputs = learner.submit(
        launcher=learner_launcher(cfg.learner), init_tasks=init_tasks
    )
    return outputs.listeners["bestval"]["RR@10"], learner
