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

from experimaestro import RunMode, copyconfig
from experimaestro.experiments.grid import generate_grid
from experimaestro.launcherfinder import find_launcher
from xpm_torch import Random
from xpm_torch.learner import Learner
from xpmir.datasets.adapters import RetrieverBasedCollection
from xpmir.experiments.ir import IRExperimentHelper, ir_experiment
from xpmir.index.bow import BOWRetriever, BOWSparseRetrieverIndexBuilder
from xpmir.index.sparse import SparseRetrieverIndexBuilder
from xpmir.letor.validation import ValidationListener
from xpmir.papers.results import PaperResults
from xpmir.rankers.standard import BM25

from splade.checks import check
from splade.configuration import Mode, SPLADEConfiguration
from splade.datasets import Datasets
from splade.devices import fabric
from splade.engines import sparse_retriever
from splade.evaluation import test_collections
from splade.models import splade_model
from splade.results import tagged
from splade.training import trainer
from splade.workarounds import check_private_hooks
from splade.workarounds.experimaestro import keep_done_markers
from splade.workarounds.xpm_torch import StaleCheckpointsCleaner
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

    # --- Data: documents and test collections
    documents = datasets.get(cfg.data.documents)
    max_docs = cfg.indexation.max_docs
    tests = test_collections(datasets, cfg.retrieval.measures, max_docs)

    # --- BM25 baseline (impact-index bag-of-words index)
    bm25_index = BOWSparseRetrieverIndexBuilder.C(
        documents=documents, max_docs=max_docs
    ).submit(launcher=bm25_launcher)
    bm25 = BOWRetriever.C(
        index=bm25_index,
        model=BM25.C(k1=cfg.bm25.k1, b=cfg.bm25.b),
        topk=cfg.retrieval.topk,
    )
    tests.evaluate_retriever(
        tagged(copyconfig(bm25), {"model": "bm25"}), bm25_launcher, with_run=True
    )

    # --- Validation collection: BM25 top-k documents of validation queries
    validation = None
    if cfg.mode == Mode.TRAIN:
        validation = RetrieverBasedCollection.C(
            dataset=datasets.validation_queries(cfg.seed, bm25_launcher),
            retrievers=[copyconfig(bm25, topk=cfg.bm25.validation_topk)],
        ).submit(launcher=bm25_launcher)
        validation.documents.in_memory = True

    # --- SPLADE, once per variant
    models, logs = {}, {}
    for variant, sweep in zip(variants, sweeps, strict=True):
        tags = {"model": "splade", **sweep}
        device = fabric(variant.precision)

        # SPLADE model and its FLOPS regularization
        scorer, flops, init_tasks = splade_model(variant.model)

        # Zero-shot: the model is evaluated as it is
        if variant.mode == Mode.ZERO_SHOT:
            evaluated = [(None, init_tasks, tags)]
        else:
            learner = train(
                variant,
                tags,
                scorer,
                flops,
                init_tasks,
                datasets=datasets,
                documents=documents,
                validation=validation,
                bm25=bm25,
                device=device,
            )
            best = learner.submit(
                launcher=find_launcher(variant.learner.requirements),
                init_tasks=init_tasks,
            ).listeners["bestval"]["RR@10"]
            if helper.xp.run_mode == RunMode.NORMAL:
                helper.tensorboard_service.add(learner, learner.logpath)
            name = "-".join(["splade"] + [f"{k}={v}" for k, v in sweep.items()])
            models[name], logs[name] = best, learner.logpath
            evaluated = [(best, [best], tags)]
            if variant.retrieval.evaluate_untrained:
                evaluated.append(
                    (None, init_tasks, {**tags, "model": "splade-untrained"})
                )

        # Sparse index of the collection, retrieval with the query encoder,
        # evaluation on the test collections (and of the model before
        # training, if asked)
        for checkpoint, model_init_tasks, model_tags in evaluated:
            index = SparseRetrieverIndexBuilder.C(
                documents=documents,
                encoder=scorer.encoder,
                batch_size=variant.indexation.batch_size,
                max_docs=max_docs,
                ordered_index=False,
                fabric_config=device,
            ).submit(
                launcher=find_launcher(variant.indexation.requirements),
                init_tasks=model_init_tasks,
            )
            retriever = sparse_retriever(
                variant.retrieval.engine,
                index=index,
                encoder=scorer.query_encoder or scorer.encoder,
                topk=variant.retrieval.topk,
                batch_size=variant.retrieval.batch_size,
                launcher=bm25_launcher,
            )
            tests.add_model(model_tags, checkpoint, index)
            tests.evaluate_retriever(
                tagged(retriever, model_tags),
                find_launcher(variant.retrieval.requirements),
                init_tasks=model_init_tasks,
                fabric_config=device,
                with_run=True,
            )

    if helper.xp.run_mode == RunMode.NORMAL:
        helper.xp.wait()
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
    bm25,
    device,
) -> Learner:
    """The learner of SPLADE (to submit), whose validation listener keeps the
    checkpoint with the best RR@10"""
    # Validation: keeps the checkpoint with the best RR@10
    validation_listener = ValidationListener.C(
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
    return tagged(
        Learner.C(
            random=Random.C(seed=cfg.seed),
            trainer=trainer(
                cfg.learner,
                datasets,
                documents,
                flops,
                cfg.seed,
                bm25=copyconfig(bm25, topk=cfg.bm25.negatives_topk),
            ),
            model=scorer,
            optimizers=optimization.optimizer,
            max_epochs=optimization.max_epochs,
            steps_per_epoch=optimization.steps_per_epoch,
            # the cleaner bounds the checkpoints kept after a kill
            listeners=[validation_listener, StaleCheckpointsCleaner.C(id="cleaner")],
            fabric_config=device,
        ),
        tags,
    )
