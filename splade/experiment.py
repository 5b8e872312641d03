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
from xpm_torch.optim import GradientClippingHook
from xpmir.datasets.adapters import RetrieverBasedCollection
from xpmir.experiments.ir import IRExperimentHelper, ir_experiment
from xpmir.papers.results import PaperResults

from splade.checks import check
from splade.configuration import (
    Architecture,
    ConfigurationError,
    Mode,
    SPLADEConfiguration,
)
from splade.datasets import Datasets
from splade.devices import fabric
from splade.export.tasks import export_indices
from splade.indexing import BM25Indices, SpladeIndices
from splade.mining import mine
from splade.models import (
    InitFromCheckpoint,
    adaptation_settings,
    idf_table,
    mntp_task,
    splade_model,
)
from splade.plots import save_trade_off
from splade.recipes import is_recipe, load_recipe
from splade.requirements import Launchers
from splade.results import tagged
from splade.results_folder import save_configuration
from splade.test_collections import test_collections
from splade.training import trainer
from splade.workarounds import check_private_hooks
from splade.workarounds.experimaestro import (
    keep_done_markers,
    keep_job_directories,
    quiet_ignored_generated_values,
    raise_if_failed,
    widen_type_variables,
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
    widen_type_variables()
    report_without_traceback(ConfigurationError)
    # One configuration per variant of the sweep (grid_search), if any
    variants, sweeps = generate_grid(cfg)
    datasets = Datasets(cfg.data)
    check(cfg, datasets, variants, downloads=helper.xp.run_mode == RunMode.NORMAL)
    launchers = Launchers(cfg)
    if helper.xp.run_mode == RunMode.NORMAL:
        save_configuration(cfg, helper.xp.resultspath)

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
        # Zero-shot: the model (and its IDF table, if it needs one) is
        # evaluated as it is
        if variant.mode == Mode.ZERO_SHOT:
            scorer, _, init_tasks, _ = model_of(variant, datasets, documents)
            evaluated = [(None, init_tasks, tags)]
        else:
            training = dict(
                datasets=datasets,
                documents=documents,
                validation=validation,
                negatives=bm25.retriever(documents, topk=variant.bm25.negatives_topk),
            )
            evaluated = []
            scorer, best, init_tasks = trained(
                variant, tags, training, evaluated, learners
            )
            evaluated.append((best, [best], tags))
            if variant.retrieval.evaluate_untrained:
                evaluated.append(
                    (None, init_tasks, {**tags, "model": "splade-untrained"})
                )

        # Sparse index of each test collection's documents, retrieval with
        # the query encoder, evaluation (also of the model before training,
        # if asked)
        for checkpoint, model_init_tasks, model_tags in evaluated:
            model = checkpoint.value if checkpoint is not None else scorer
            indices = SpladeIndices(
                variant, model, model_init_tasks, device, variant_launchers
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

            # Export of the indices, with the encoded test queries, to the
            # formats of other engines (export.formats; docs/exporting.md)
            export_indices(indices, tests, model_tags)

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
        # beside results.csv: effectiveness against FLOPS and latency
        save_trade_off(tests.to_dataframe(), helper.xp.resultspath, cfg.title or cfg.id)
    return PaperResults(models=models, evaluations=tests, tb_logs=logs)


def trained(cfg, tags, training, evaluated, learners):
    """Trains the model of ``cfg`` (after its first stage, with ``mining``);
    returns the scorer that is trained, its best checkpoint and the tasks
    that initialized it

    :param evaluated: the first stage's (checkpoint, init tasks, tags) is
        added to it (it is evaluated too)
    :param learners: the learners (learner, tags, best checkpoint) are
        added to it
    """
    documents = training["documents"]
    scorer, flops, init_tasks, idf = model_of(cfg, training["datasets"], documents)
    scored = None
    if cfg.mining is not None:
        # SPLADE++ SelfDistil, SPLADE-v3: a first stage (a given model, one
        # trained by another recipe, or one trained here on the recipe's
        # data) retrieves hard negatives for the training queries, teachers
        # score them, the model learns them
        first_tags = {**tags, "model": "splade-first-stage"}
        first_stage = cfg.mining.first_stage
        if is_recipe(first_stage):
            first, first_best, _ = trained(
                load_recipe(first_stage), first_tags, training, [], []
            )
            first_tasks = [first_best]
            evaluated.append((first_best, first_tasks, first_tags))
        elif first_stage:
            # a SPLADE-max model, whatever the architecture trained here
            given = evolve(
                cfg.model,
                base_hf_id=first_stage,
                architecture=Architecture.MAX,
                query_hf_id=None,
                document_activation=None,
            )
            first, _, first_tasks = splade_model(given)
        else:
            first_best, first_learner = train(
                cfg, first_tags, scorer, flops, init_tasks, **training
            )
            first, first_tasks = scorer, [first_best]
            evaluated.append((first_best, first_tasks, first_tags))
            learners.append((first_learner, first_tags, first_best))
        device = fabric(cfg.precision)
        first_indices = SpladeIndices(cfg, first, first_tasks, device, Launchers(cfg))
        index = first_indices.index(documents)
        scored = mine(cfg, training["datasets"], first, index, first_tasks, device)
        if cfg.mining.init_from_first_stage:
            if is_recipe(first_stage):
                # the recipe's weights, in this recipe's model
                init_tasks = [InitFromCheckpoint.C(checkpoint=first_best, model=scorer)]
            elif first_stage:
                # this recipe's model, from the given model's weights
                model = evolve(cfg.model, base_hf_id=first_stage)
                scorer, _, init_tasks = splade_model(model, idf)
            else:
                scorer, init_tasks = first, first_tasks

    best, learner = train(
        cfg, tags, scorer, flops, init_tasks, scored=scored, **training
    )
    learners.append((learner, tags, best))
    return scorer, best, init_tasks


def model_of(cfg: SPLADEConfiguration, datasets, documents):
    """The SPLADE scorer of ``cfg``, its FLOPS regularizer, the tasks that
    initialize it and its IDF table (of inference-free SPLADE and of the
    IDF-aware FLOPS; None if it has none): a decoder starts from its MNTP
    adaptation (a task of its own, shared by the variants that have the
    same)"""
    launchers = Launchers(cfg)
    idf = idf_table(cfg.model, cfg.mode, documents, launchers.bm25())
    adapted = None
    if adaptation_settings(cfg.model) is not None:
        adapted = mntp_task(
            cfg.model, datasets.get(adaptation_documents(cfg)), launchers.mntp()
        )
    return (*splade_model(cfg.model, idf, adapted), idf)


def adaptation_documents(cfg: SPLADEConfiguration) -> str:
    """The documents of the MNTP adaptation (``model.mntp.documents``, or
    ``data.documents``)"""
    mntp = cfg.model.mntp
    return (mntp.documents if mntp and mntp.documents else None) or cfg.data.documents


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
            **clipping(optimization),
        ),
        tags,
    )
    outputs = learner.submit(launcher=Launchers(cfg).learner(), init_tasks=init_tasks)
    return outputs.listeners["bestval"]["RR@10"], learner


def clipping(optimization) -> dict:
    """The learner's gradient clipping hook, if any"""
    if optimization.max_grad_norm is None:
        return {}
    return {"hooks": [GradientClippingHook.C(max_norm=optimization.max_grad_norm)]}
