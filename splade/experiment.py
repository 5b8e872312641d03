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
from xpm_torch import Random
from xpm_torch.learner import Learner
from xpmir.datasets.adapters import RetrieverBasedCollection
from xpmir.experiments.ir import IRExperimentHelper, ir_experiment
from xpmir.papers.results import PaperResults

from splade.checks import check
from splade.configuration import ConfigurationError, Mode, SPLADEConfiguration
from splade.datasets import Datasets
from splade.devices import fabric
from splade.indexing import BM25Indices, SpladeIndices
from splade.mining import mine
from splade.models import splade_model
from splade.requirements import Launchers
from splade.results import tagged
from splade.test_collections import test_collections
from splade.training import trainer
from splade.workarounds import check_private_hooks
from splade.workarounds.experimaestro import (
    keep_done_markers,
    keep_job_directories,
    quiet_ignored_generated_values,
    raise_if_failed,
)
from splade.workarounds.xpm_torch import (
    LastEpochMetrics,
    StaleCheckpointsCleaner,
    SynchronisedValidationListener,
)
from splade.workarounds.xpmir import FullRetrieverRescorer, report_without_traceback


@ir_experiment()
def run(helper: IRExperimentHelper, cfg: SPLADEConfiguration) -> PaperResults:
    """SPLADE: sparse lexical and expansion model for first-stage retrieval"""
    check_private_hooks()
    keep_done_markers()
    keep_job_directories()
    quiet_ignored_generated_values()
    report_without_traceback(ConfigurationError)
    # One configuration per variant of the sweep (grid_search), if any
    variants, sweeps = generate_grid(cfg)
    datasets = Datasets(cfg.data)
    check(cfg, datasets, variants, downloads=helper.xp.run_mode == RunMode.NORMAL)
    launchers = Launchers(cfg)

    # --- Data: the training documents, and the test collections (each is
    # searched in an index of its own documents, shared by the collections
    # that have the same ones)
    documents = datasets.get(cfg.data.documents)
    tests = test_collections(datasets, cfg.retrieval.measures, cfg.indexation.max_docs)

    # --- BM25 baseline (impact-index bag-of-words index)
    bm25 = BM25Indices(cfg, launchers)
    tests.evaluate({"model": "bm25"}, bm25.retriever, launchers.bm25)

    # --- Validation collection: BM25 top-k documents of validation queries
    validation = None
    if cfg.mode == Mode.TRAIN:
        validation = RetrieverBasedCollection.C(
            dataset=datasets.validation_queries(cfg.seed, launchers.bm25()),
            retrievers=[bm25.retriever(documents, topk=cfg.bm25.validation_topk)],
        ).submit(launcher=launchers.bm25())
        validation.documents.in_memory = True

    # --- SPLADE, once per variant
    learners = []  # (learner, tags, best checkpoint)
    for variant, sweep in zip(variants, sweeps, strict=True):
        tags = {"model": "splade", **sweep}
        device = fabric(variant.precision)
        variant_launchers = Launchers(variant)

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
                negatives=bm25.retriever(documents, topk=variant.bm25.negatives_topk),
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
                first_indices = SpladeIndices(
                    variant, first, first_tasks, device, variant_launchers
                )
                index = first_indices.index(documents)
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
            indices = SpladeIndices(
                variant, scorer, model_init_tasks, device, variant_launchers
            )
            tests.evaluate(
                model_tags,
                indices.retriever,
                variant_launchers.retrieval,
                index_of=indices.index,
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
    outputs = learner.submit(launcher=Launchers(cfg).learner(), init_tasks=init_tasks)
    return outputs.listeners["bestval"]["RR@10"], learner
