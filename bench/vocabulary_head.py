"""Peak memory and time of one training step of SPLADE-max's vocabulary
head: the plain heads against the memory-light one
(:mod:`splade.encoders.head`)

The head is what runs after the transformer: the projection of every token
onto the vocabulary, the maximum over each text's tokens, log(1 + ReLU),
and the backward pass of all that down to the tokens' states and the
projection's weights. One step here is the forward and backward pass of
the head alone, the transformer's output being given (random states of
``texts x length`` tokens), with a loss of every entry of the vectors (a
random combination, as the ranking loss and the FLOPS regularization, so
that about half of the vocabulary gets a gradient: early training, the
densest case). Heads:

- ``padded``: xpmir 1.5.0's (``MaxAggregation`` without Sparton): the
  logits of the padded batch, then ReLU and the mask's product;
- ``plain``: the package's until now (``head: plain``): the logits a chunk
  of 8,192 tokens at a time, but autograd keeps every chunk's logits;
- ``memory``: :class:`~splade.encoders.head.MaxLogits` (``head: memory``,
  the default), which keeps, per text, the maximum and its token.

Each measurement runs in a process of its own: its peak resident memory
(``ru_maxrss``) minus what it held before the step (the inputs and the
weights) is the step's peak memory. Time: the median of ``--repeat`` steps
after one warm-up step. Batches: at least 1 GB of plain logits (texts x
length x vocabulary x 4 bytes), 32 texts of 256 tokens at 30,522 entries
(BERT, hidden 768), 8 texts of 256 tokens at 151,936 (Qwen, hidden 1,024),
with the projection trained, and frozen (LoRA, as the LLM recipes train: no
gradient of the LM head's weights).

    nice -n 10 python -m bench.vocabulary_head --threads 1 \\
        --figure docs/figures/vocabulary_head.png
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: (vocabulary, hidden size, texts, tokens per text, projection trained):
#: the projection is frozen with LoRA (the LLM recipes' setting: the LM
#: head's weights get no gradient)
SETTINGS = [
    (30_522, 768, 32, 256, True),
    (151_936, 1024, 8, 256, True),
    (151_936, 1024, 8, 256, False),
]
HEADS = ["padded", "plain", "memory"]


def resident_mb() -> float:
    """Current resident memory (MB)"""
    with open("/proc/self/statm") as fp:
        pages = int(fp.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mb() -> float:
    """Peak resident memory of the process so far (MB)"""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    head: str,
    vocabulary: int,
    hidden: int,
    texts: int,
    length: int,
    repeat: int,
    trained: bool = True,
):
    """One head, in this process: (peak MB of a step, seconds per step)"""
    import torch

    from splade.encoders.head import chunked_max_logits, max_logits, padded_max_logits

    torch.manual_seed(0)
    tokens = torch.randn(texts * length, hidden, requires_grad=True)
    weight = (0.05 * torch.randn(vocabulary, hidden)).requires_grad_(trained)
    bias = torch.zeros(vocabulary, requires_grad=trained)
    coefficients = torch.randn(texts, vocabulary)
    lengths = [length] * texts

    def step():
        for tensor in (tokens, weight, bias):
            tensor.grad = None
        if head == "padded":
            states = tokens.view(texts, length, hidden)
            mask = torch.ones(texts, length)
            value = padded_max_logits(states, mask, weight, bias)
        else:
            if head == "memory":  # (its own chunks: CHUNK_BYTES of logits)
                maxima = max_logits(tokens, lengths, weight, bias)
            else:
                maxima = chunked_max_logits(tokens, lengths, weight, bias, 8192)
            value = torch.log1p(torch.relu(maxima))
        loss = (value * coefficients).sum() + (value.mean(dim=0) ** 2).sum()
        loss.backward()

    # the gradients' buffers exist before the measured step
    step()
    before = resident_mb()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return max(0.0, peak_mb() - before), statistics.median(times)


def run(args) -> list:
    """Every head and setting, each in a process of its own"""
    rows = []
    for vocabulary, hidden, texts, length, trained in SETTINGS:
        logits_gb = texts * length * vocabulary * 4 / 1e9
        for head in HEADS:
            command = [
                sys.executable,
                "-m",
                "bench.vocabulary_head",
                "--one",
                json.dumps(
                    [head, vocabulary, hidden, texts, length, args.repeat, trained]
                ),
                "--threads",
                str(args.threads),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True)
            peak, seconds = json.loads(output.stdout.strip().splitlines()[-1])
            row = dict(
                vocabulary=vocabulary,
                hidden=hidden,
                batch=f"{texts} x {length}",
                logits_gb=round(logits_gb, 2),
                projection="trained" if trained else "frozen (LoRA)",
                head=head,
                peak_mb=round(peak),
                seconds=round(seconds, 2),
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows) -> str:
    """A Markdown table, with the ratios to the plain head"""
    lines = [
        "| vocabulary | hidden | batch (texts x tokens) | plain logits | projection |"
        " head | peak memory of a step | time of a step | memory / plain |"
        " time / plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        plain = next(
            r
            for r in rows
            if r["vocabulary"] == row["vocabulary"]
            and r["projection"] == row["projection"]
            and r["head"] == "plain"
        )
        lines.append(
            f"| {row['vocabulary']:,} | {row['hidden']} | {row['batch']} |"
            f" {row['logits_gb']} GB | {row['projection']} | {row['head']} |"
            f" {row['peak_mb']:,} MB |"
            f" {row['seconds']} s | {row['peak_mb'] / max(1, plain['peak_mb']):.2f} |"
            f" {row['seconds'] / plain['seconds']:.2f} |"
        )
    return "\n".join(lines)


def figure(rows, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    # the settings in their order: vocabulary, and whether the projection
    # is trained
    settings = list(dict.fromkeys((r["vocabulary"], r["projection"]) for r in rows))
    width = 0.25
    for ix, head in enumerate(HEADS):
        chosen = [
            next(
                r
                for r in rows
                if (r["vocabulary"], r["projection"]) == setting and r["head"] == head
            )
            for setting in settings
        ]
        positions = [p + (ix - 1) * width for p in range(len(settings))]
        axes[0].bar(positions, [r["peak_mb"] / 1024 for r in chosen], width, label=head)
        axes[1].bar(positions, [r["seconds"] for r in chosen], width, label=head)
    labels = [
        f"{v:,}" + ("" if projection == "trained" else f"\n{projection}")
        for v, projection in settings
    ]
    titles = ["peak memory of a step (GiB)", "time of a step (s)"]
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xticks(range(len(settings)), labels)
        axis.set_xlabel("vocabulary")
        axis.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.vocabulary_head", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeat", type=int, default=2, help="timed steps")
    parser.add_argument("--figure", type=Path, help="where to save the figure")
    parser.add_argument("--json", type=Path, help="where to save the rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = parser().parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return
    rows = run(args)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
