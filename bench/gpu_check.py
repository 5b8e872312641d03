"""The package's SPLADE-max encoder on a GPU: same vectors and gradients as
xpmir's, and the time of a training step and of encoding

On CUDA with Triton, xpmir's ``SpladeTextEncoder`` uses its fused Sparton
kernel (projection, ReLU, maximum, log1p), and so does
``splade.encoders.SpladeMaxEncoder``, which then delegates to it (its
grouping by length made a training step 0.81x as fast on an H200). This
script checks, with a real SPLADE model:

- representations (no gradient) equal xpmir's on the GPU and the CPU's;
- gradients of a training step (eval mode: no dropout) equal xpmir's;

then times a training step (forward and backward of 16 queries and 32
documents, as ``splade/local_finetune.yaml``) and the encoding of documents,
ours against xpmir's, in the same run. CPU-only machines run it too
(``--device cpu``), with smaller sizes.

    python -m bench.gpu_check
    python -m bench.gpu_check --device cpu --threads 1 --encode 64 --repeat 3

(``--model``: by default ``../shared/models/splade-bert-tiny``)
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from datamaestro_ir.data import SimpleTextItem

from bench import common
from splade.debug_data import FILLER_WORDS
from splade.models import load_encoders


def texts(count: int, low: int, high: int, seed: int):
    """Texts of ``low`` to ``high`` English words"""
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(FILLER_WORDS, size=int(rng.integers(low, high))))
        for _ in range(count)
    ]


def records(items):
    return [{"text_item": SimpleTextItem(text)} for text in items]


def encoders(model: Path, maxlen: int, device: str):
    """Ours and xpmir's document encoders, loaded from ``model``"""
    (ours, _), (upstream, _) = (
        load_encoders(model, upstream=upstream, device=device, document_maxlen=maxlen)
        for upstream in (False, True)
    )
    return [ours, upstream]


def gradients(encoder, batch, weights):
    encoder.zero_grad()
    value = encoder(batch).value
    (value * weights).sum().backward()
    grads = {
        name: p.grad.detach().clone()
        for name, p in encoder.named_parameters()
        if p.grad is not None
    }
    return value.detach(), grads


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0]
    )
    common.add_path(parser, "--model", common.MODEL, "SPLADE model")
    parser.add_argument(
        "--device",
        help="default: cuda when available, else cpu",
    )
    parser.add_argument("--maxlen", type=int, default=256)
    parser.add_argument("--encode", type=int, default=4096, help="documents")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    common.require(arguments, args.model, "model", "--model")
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda"):
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
        try:
            import triton

            print("triton", triton.__version__)
        except ImportError:
            print("no triton: xpmir's Sparton kernel is not used")

    ours, xpmir = encoders(args.model, args.maxlen, device)
    sparton = hasattr(xpmir._head, "_sparton_head")
    print(f"xpmir head: {type(xpmir._head).__name__} (Sparton: {sparton})")

    # --- Same representations (ours/xpmir on the device, and the CPU's)
    documents = records(texts(48, 20, 260, seed=0))
    with torch.no_grad():
        a, b = ours(documents).value, xpmir(documents).value
    difference = (a - b).abs().max().item()
    print(f"vectors, ours vs xpmir on {device}: max abs difference {difference:.2e}")
    assert difference < 1e-3, difference
    if device != "cpu":
        cpu_ours, _ = encoders(args.model, args.maxlen, "cpu")
        with torch.no_grad():
            c = cpu_ours(documents).value
        difference = (a.cpu() - c).abs().max().item()
        print(f"vectors, {device} vs CPU: max abs difference {difference:.2e}")
        assert difference < 1e-3, difference
        del cpu_ours

    # --- Same gradients
    weights = torch.linspace(-1, 1, ours.dimension, device=device)
    batch = records(texts(16, 20, 260, seed=1))
    value_a, grads_a = gradients(ours, batch, weights)
    value_b, grads_b = gradients(xpmir, batch, weights)
    assert set(grads_a) == set(grads_b) and len(grads_a) > 10
    # relative to the largest gradient of the parameter, ignoring the
    # parameters whose gradient is zero up to rounding (attention key
    # biases: softmax is invariant to them)
    scale = max(g.abs().max().item() for g in grads_b.values())
    differences = {
        n: (grads_a[n] - grads_b[n]).abs().max().item()
        / max(grads_b[n].abs().max().item(), 1e-4 * scale)
        for n in grads_b
    }
    name, worst = max(differences.items(), key=lambda item: item[1])
    print(f"gradients, ours vs xpmir: max relative difference {worst:.2e} ({name})")
    assert worst < 1e-3, worst

    # --- Training step: 16 queries (up to 32 tokens) and 32 documents
    queries = records(texts(16, 3, 12, seed=2))
    docs = records(texts(32, 150, 260, seed=3))
    for encoder in (ours, xpmir):
        encoder.train()

    def step(encoder):
        def run():
            encoder.zero_grad()
            q, d = encoder(queries).value, encoder(docs).value
            scores = q @ d.T
            loss = torch.nn.functional.cross_entropy(
                scores, torch.arange(16, device=device) * 2
            )
            loss.backward()

        return run

    t_ours = common.median_time(step(ours), device, args.repeat)
    t_xpmir = common.median_time(step(xpmir), device, args.repeat)
    print(
        f"training step (16 queries, 32 documents of <= {args.maxlen} tokens):"
        f" ours {1000 * t_ours:.1f} ms, xpmir {1000 * t_xpmir:.1f} ms"
        f" ({t_xpmir / t_ours:.2f}x)"
    )

    # --- Encoding (inference) of documents, batches of 512
    for encoder in (ours, xpmir):
        encoder.eval()
    corpus = records(texts(args.encode, 20, 260, seed=4))

    def encode(encoder):
        def run():
            with torch.no_grad():
                for start in range(0, len(corpus), 512):
                    encoder(corpus[start : start + 512])

        return run

    repeat = max(1, args.repeat // 5)
    t_ours = common.median_time(encode(ours), device, repeat)
    t_xpmir = common.median_time(encode(xpmir), device, repeat)
    print(
        f"encoding {len(corpus)} documents: ours {len(corpus) / t_ours:.0f} docs/s,"
        f" xpmir {len(corpus) / t_xpmir:.0f} docs/s ({t_xpmir / t_ours:.2f}x)"
    )
    if device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
