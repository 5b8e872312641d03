"""Training and encoding throughput of the package's SPLADE-max against
sentence-transformers' sparse encoder, on one GPU

At DistilBERT scale (``distilbert-base-uncased``'s configuration, with
random weights: nothing is downloaded) and 256 tokens, with mixed precision
(``16-mixed``), in the same run:

- a MarginMSE + FLOPS training step of batch 32 and 128 (queries, each
  with a positive and a negative document): the package's, as its learner
  runs it (xpm_torch's trainer and Fabric, the package's model, FLOPS
  regularizer and trainer, AdamW), against sentence-transformers'
  ``SparseEncoderTrainer`` with ``SpladeLoss(SparseMarginMSELoss)`` on a
  model of the same shape (when ``datasets`` and ``accelerate`` are
  missing, as on a machine without network, the step its trainer runs:
  the loss, its backward pass with a gradient scaler, AdamW);
- encoding documents (documents/s): the package's document encoder, in
  batches of ``--encode-batch``, against ``SparseEncoder.encode_document``;
- the peak GPU memory of the training step at the largest batch.

Prints a table. On a CPU it runs too, with a small model (``--tiny``: the
embedded debug model's shape, 64 tokens, batches 4 and 8), to check the
script:

    python -m bench.gpu_throughput                       # on a GPU
    python -m bench.gpu_throughput --tiny --device cpu   # a check, on a CPU
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench import common
from bench.common import synchronize
from splade.debug_data import FILLER_WORDS


def texts(count: int, words: int, seed: int):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(FILLER_WORDS, size=words)) for _ in range(count)]


def make_model(folder: Path, tiny: bool, maxlen: int) -> Path:
    """A masked language model with random weights and a WordPiece
    tokenizer, as a Hugging Face folder: DistilBERT's configuration (30,522
    tokens, 6 layers of 768), or the embedded debug model's shape"""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    from splade.tiny_model import TinyMLMSpec, make_tiny_mlm

    vocabulary = 1024 if tiny else 30522
    make_tiny_mlm(
        texts(200, 50, seed=0),
        folder,
        TinyMLMSpec(vocab_size=vocabulary, max_length=max(maxlen, 512)),
    )
    if not tiny:
        torch.manual_seed(0)
        # distilbert-base-uncased's configuration (the defaults)
        DistilBertForMaskedLM(DistilBertConfig(vocab_size=vocabulary)).save_pretrained(
            folder
        )
    return folder


def training_data(batch: int, steps: int, maxlen: int):
    """Queries (8 words), positive and negative documents (``maxlen``
    words: truncated to ``maxlen`` tokens) and teacher scores"""
    count = batch * steps
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(count, 2)) + [2, 0]
    return (
        texts(count, 8, seed=2),
        texts(count, maxlen, seed=3),
        texts(count, maxlen, seed=4),
        scores,
    )


# --- The package (xpm_torch's trainer on Lightning Fabric)


def package_steps(folder, batch, steps, maxlen, precision, device, workdir):
    """Times of ``steps`` training steps of the package's learner (after one
    warm-up step), and the peak GPU memory"""
    from datamaestro_ir.data.distillation import PairwiseDistillationSamplesTSV
    from xpm_torch.optim import ScheduledOptimizer
    from xpm_torch.trainers.context import TrainerContext
    from xpmir.letor.distillation.pairwise import (
        DistillationPairwiseTrainer,
        MSEDifferenceLoss,
    )

    from splade.configuration import Model, Optimization
    from splade.devices import AutoFabricConfiguration
    from splade.models import splade_model
    from splade.workarounds.xpmir import DistillationSamplesSampler, ProcessedSampler

    queries, positives, negatives, scores = training_data(batch, steps + 1, maxlen)
    samples = workdir / f"pairs-{batch}.tsv"
    with samples.open("wt") as fp:
        for q, p, n, (sp, sn) in zip(
            queries, positives, negatives, scores, strict=True
        ):
            fp.write(f"{sp}\t{sn}\t{q}\t{p}\t{n}\n")

    scorer, flops, _ = splade_model(
        Model(
            base_hf_id=str(folder),
            lambda_q=0.5,
            lambda_d=0.4,
            lambda_warmup_steps=0,
            query_maxlen=maxlen,
            document_maxlen=maxlen,
        )
    )
    sampler = ProcessedSampler.C(
        sampler=DistillationSamplesSampler.C(
            samples=PairwiseDistillationSamplesTSV.C(
                id="bench", path=samples, with_docid=False, with_queryid=False
            )
        ),
        processors=[],
    )
    trainer = DistillationPairwiseTrainer.C(
        sampler=sampler,
        lossfn=MSEDifferenceLoss.C(),
        hooks=[flops],
        batch_size=batch,
        num_workers=0,
    ).instance()
    model = scorer.instance()
    model.initialize()
    for encoder in (model.encoder, model.query_encoder):
        encoder.load_model(folder)

    # As xpm_torch's Learner.execute (xpm_torch/learner.py:271-360)
    accelerator = "cuda" if device.startswith("cuda") else "cpu"
    fabric = (
        AutoFabricConfiguration.C(
            precision=precision, devices="1", accelerator=accelerator
        )
        .instance()
        .get_fabric()
    )
    fabric.launch()
    optimizer = ScheduledOptimizer()
    context = TrainerContext(
        workdir / "logs", workdir / "checkpoints", 1, steps + 1, trainer, model,
        optimizer, fabric=fabric,
    )  # fmt: skip
    torch.manual_seed(0)
    with fabric.init_module():
        trainer.initialize(np.random.RandomState(0), context)
    trainer.dataloader = fabric.setup_dataloaders(trainer.dataloader)
    optimization = Optimization(lr=2e-5, num_warmup_steps=0, batch_size=batch)
    optimizer.initialize(
        [o.instance() for o in optimization.optimizer],
        steps + 1,
        model,
        use_scaler=False,
        hooks=[],
        trainer_context=context,
    )
    trainer.pre_train_setup(fabric)
    wrapped = model.setup_with_fabric(fabric)
    optimizer.optimizers = list(fabric.setup_optimizers(*optimizer.optimizers))
    context.state._fabric_model = trainer._fabric_model = wrapped
    context.state.model = trainer.model = wrapped
    wrapped.train()

    batches = trainer.iter_batches()
    context.nextepoch()
    times = []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with context:
        for step in range(steps + 1):
            records = next(batches)
            context.nextbatch()
            synchronize(device)
            start = time.perf_counter()
            with context.step(metrics_sink()):
                trainer.process_batch(records)
            synchronize(device)
            if step:  # the first one warms up
                times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return statistics.median(times), peak


def metrics_sink():
    from xpm_torch.metrics import Metrics

    return Metrics()


def package_encoding(folder, documents, maxlen, batch, device):
    from splade.models import load_encoders

    encoder, _ = load_encoders(folder, device=device, document_maxlen=maxlen)
    from datamaestro_ir.data import SimpleTextItem

    records = [{"text_item": SimpleTextItem(text)} for text in documents]
    autocast = (
        torch.autocast("cuda", torch.float16) if device.startswith("cuda") else None
    )

    def encode():
        with torch.no_grad():
            for start in range(0, len(records), batch):
                if autocast is not None:
                    with autocast:
                        encoder(records[start : start + batch]).value.cpu()
                else:
                    encoder(records[start : start + batch]).value.cpu()

    return common.median_time(encode, device)


# --- sentence-transformers


def st_steps(folder, batch, steps, maxlen, device, workdir):
    """Times of ``steps`` training steps of sentence-transformers (after one
    warm-up step), the peak GPU memory, and how the step was run"""
    from sentence_transformers.sparse_encoder.losses import (
        SparseMarginMSELoss,
        SpladeLoss,
    )

    from splade.encoders import load_sparse_encoder

    queries, positives, negatives, scores = training_data(batch, steps + 1, maxlen)
    margins = (scores[:, 0] - scores[:, 1]).astype(np.float32)
    torch.manual_seed(0)
    model = load_sparse_encoder(folder, maxlen=maxlen).to(device)
    loss = SpladeLoss(
        model,
        loss=SparseMarginMSELoss(model),
        document_regularizer_weight=0.4,
        query_regularizer_weight=0.5,
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        from datasets import Dataset
        from sentence_transformers.sparse_encoder import (
            SparseEncoderTrainer,
            SparseEncoderTrainingArguments,
        )
        from transformers import TrainerCallback
    except ImportError:
        how = "loss step (no datasets/accelerate)"
    else:
        how = "SparseEncoderTrainer"
        times = []

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                synchronize(device)
                self.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                synchronize(device)
                times.append(time.perf_counter() - self.start)

        dataset = Dataset.from_dict(
            {
                "query": queries,
                "positive": positives,
                "negative": negatives,
                "label": margins.tolist(),
            }
        )
        arguments = SparseEncoderTrainingArguments(
            output_dir=str(workdir / "st"),
            per_device_train_batch_size=batch,
            max_steps=steps + 1,
            learning_rate=2e-5,
            fp16=cuda,
            use_cpu=not cuda,
            save_strategy="no",
            report_to=[],
            logging_steps=10**6,
            dataloader_drop_last=True,
            seed=0,
        )
        SparseEncoderTrainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            loss=loss,
            callbacks=[Timer()],
        ).train()
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return statistics.median(times[1:]), peak, how

    # What the trainer's training_step runs (without its data pipeline)
    columns = (queries, positives, negatives)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    model.train()
    times = []
    for step in range(steps + 1):
        part = slice(step * batch, (step + 1) * batch)
        synchronize(device)
        start = time.perf_counter()
        features = [features_of(model, column[part], device) for column in columns]
        labels = torch.tensor(margins[part], device=device)
        with torch.autocast("cuda", torch.float16, enabled=cuda):
            value = sum(loss(features, labels).values())
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        synchronize(device)
        if step:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return statistics.median(times), peak, how


def features_of(model, texts, device):
    """The model's input features of texts, on the device"""
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value
        for key, value in preprocess(texts).items()
    }


def st_encoding(folder, documents, maxlen, batch, device):
    from splade.encoders import load_sparse_encoder

    model = load_sparse_encoder(folder, maxlen=maxlen).to(device)
    if device.startswith("cuda"):
        model.half()

    def encode():
        model.encode_document(
            documents, batch_size=batch, convert_to_tensor=True, device=device
        ).cpu()

    return common.median_time(encode, device)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--tiny", action="store_true", help="the debug model's size")
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--maxlen", type=int)
    parser.add_argument("--documents", type=int, help="documents encoded")
    parser.add_argument("--encode-batch", type=int, default=256)
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    common.require_modules(arguments, "sentence_transformers")
    device = args.device
    cuda = device.startswith("cuda")
    batches = args.batches or ([4, 8] if args.tiny else [32, 128])
    maxlen = args.maxlen or (64 if args.tiny else 256)
    count = args.documents or (256 if args.tiny else 8192)
    precision = "16-mixed" if cuda else "32-true"
    if cuda:
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
    import sentence_transformers

    print(
        f"sentence-transformers {sentence_transformers.__version__};"
        f" {'tiny model' if args.tiny else 'DistilBERT configuration'},"
        f" {maxlen} tokens, precision {precision}, device {device}"
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        folder = make_model(workdir / "model", args.tiny, maxlen)
        for batch in batches:
            ours, ours_peak = package_steps(
                folder, batch, args.steps, maxlen, precision, device, workdir
            )
            theirs, st_peak, how = st_steps(
                folder, batch, args.steps, maxlen, device, workdir
            )
            rows.append(
                (f"training step, batch {batch} (ms)", ours * 1e3, theirs * 1e3)
            )
            rows.append((f"  pairs/s, batch {batch}", batch / ours, batch / theirs))
            if cuda and batch == max(batches):
                rows.append(
                    (
                        f"  peak GPU memory, batch {batch} (MiB)",
                        ours_peak / 2**20,
                        st_peak / 2**20,
                    )
                )
        documents = texts(count, maxlen, seed=5)
        ours = package_encoding(folder, documents, maxlen, args.encode_batch, device)
        theirs = st_encoding(folder, documents, maxlen, args.encode_batch, device)
        rows.append(
            (
                f"encoding (documents/s, batch {args.encode_batch})",
                count / ours,
                count / theirs,
            )
        )

    print(f"\nsentence-transformers' step: {how}\n")
    print("| measure | splade (this package) | sentence-transformers | ratio |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        higher = "/s" in name
        ratio = a / b if higher else b / a
        print(f"| {name} | {a:.1f} | {b:.1f} | {ratio:.2f}x |")
    print("\n(ratio > 1: the package is faster, or uses less memory)")


if __name__ == "__main__":
    main()
