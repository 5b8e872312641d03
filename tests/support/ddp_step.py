"""One optimisation step of the package's SPLADE model, as an experimaestro
learner task, on ``DEVICES`` CPU processes (Lightning Fabric's ``ddp``)

    python tests/support/ddp_step.py WORKDIR MODEL DATA LOSS DEVICES BATCH

``MODEL`` is a Hugging Face masked language model folder (the embedded tiny
model), ``DATA`` a folder with ``pairs.tsv`` (teacher scores and texts, for
``margin_mse``) and ``triplets.tsv`` (texts, for ``softmax_ce``), ``BATCH``
the global batch. The learner is the one the experiment builds (model,
FLOPS regularizer, samplers, trainer, loss), with SGD (whose update is the
gradient: Adam's first step would hide a wrong gradient scale), the FLOPS
weights at their final value, no validation. Prints the learner's job
folder.
"""

import sys
from pathlib import Path

from datamaestro_ir.data import TrainingTripletsLines
from datamaestro_ir.data.distillation import PairwiseDistillationSamplesTSV
from experimaestro import experiment
from xpm_torch import Random
from xpm_torch.learner import Learner
from xpm_torch.losses.batchwise import SoftmaxCrossEntropy
from xpmir.letor.distillation.pairwise import (
    DistillationPairwiseTrainer,
    MSEDifferenceLoss,
)

from splade.configuration import Model, Optimization
from splade.devices import fabric
from splade.models import splade_model
from splade.workarounds.xpmir import (
    DistillationSamplesSampler,
    InBatchNegativesTrainer,
    ProcessedSampler,
    TripletsSampler,
)

ROOT = Path(__file__).parents[2]


def learner(model: Path, data: Path, loss: str, devices: int, batch: int):
    scorer, flops, init_tasks = splade_model(
        Model(
            base_hf_id=str(model),
            lambda_q=0.3,
            lambda_d=0.2,
            lambda_warmup_steps=0,
            query_maxlen=16,
            document_maxlen=64,
        )
    )
    common = dict(hooks=[flops], batch_size=batch, num_workers=0)
    if loss == "margin_mse":
        samples = PairwiseDistillationSamplesTSV.C(
            id="test.pairs",
            path=data / "pairs.tsv",
            with_docid=False,
            with_queryid=False,
        )
        trainer = DistillationPairwiseTrainer.C(
            sampler=ProcessedSampler.C(
                sampler=DistillationSamplesSampler.C(samples=samples), processors=[]
            ),
            lossfn=MSEDifferenceLoss.C(),
            **common,
        )
    else:
        triplets = TrainingTripletsLines.C(
            id="test.triplets",
            path=data / "triplets.tsv",
            doc_ids=False,
            topic_ids=False,
        )
        trainer = InBatchNegativesTrainer.C(
            sampler=TripletsSampler.C(source=triplets),
            lossfn=SoftmaxCrossEntropy.C(),
            **common,
        )
    optimization = Optimization(
        optimizer_name="sgd",
        lr=0.01,
        weight_decay=0.0,
        num_warmup_steps=0,
        batch_size=batch,
        max_epochs=1,
        steps_per_epoch=1,
    )
    task = Learner.C(
        random=Random.C(seed=0),
        trainer=trainer,
        model=scorer,
        optimizers=optimization.optimizer,
        max_epochs=1,
        steps_per_epoch=1,
        listeners=[],
        fabric_config=fabric("32-true", devices),
    )
    return task, init_tasks


def main():
    workdir, model, data = (Path(arg) for arg in sys.argv[1:4])
    loss, devices, batch = sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    task, init_tasks = learner(model, data, loss, devices, batch)
    with experiment(workdir, "ddp-step", port=None) as xp:
        xp.workspace.python_path.append(ROOT)
        task.submit(init_tasks=init_tasks)
    print(task.__xpm__.job.jobpath)


if __name__ == "__main__":
    main()
