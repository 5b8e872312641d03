"""Probes of the collective operations the package uses, on 2 CPU processes
(Lightning Fabric's ``ddp``, ``gloo``)

    python tests/support/ddp_probe.py OUTDIR collectives
    python tests/support/ddp_probe.py OUTDIR orphan [die-with-parent]

``collectives`` writes ``rank<r>.json`` with what each rank saw (upstream
behaviours, and the package's fixes); ``orphan`` writes ``pids.json`` (the
process of each rank) and then waits (the test kills rank 0).
"""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import torch


def collectives(fabric, out: Path):
    import xpmir.neural.dual as dual
    from xpm_torch.learner import LearnerListenerStatus
    from xpmir.neural.dual import Dense

    import splade.workarounds.xpmir as workarounds
    from splade.distributed import gather_rows
    from splade.workarounds.xpm_torch import broadcast_decision

    rank = fabric.global_rank
    seen = {"rank": rank, "world_size": fabric.world_size}

    # Lightning's broadcast returns rank 0's value, its argument is unchanged
    value = torch.tensor([10 + rank])
    returned = fabric.broadcast(value, src=0)
    seen["broadcast"] = {"argument": value.tolist(), "returned": returned.tolist()}
    status = (
        LearnerListenerStatus.STOP if rank == 0 else LearnerListenerStatus.DONT_STOP
    )
    seen["decision"] = broadcast_decision(fabric, status).name

    # Rows of every process (rank 0 has 2, rank 1 has 3)
    generator = torch.Generator().manual_seed(0)
    everything = torch.randn(5, 4, generator=generator)
    weights = torch.randn(5, 4, generator=generator)
    mine = slice(0, 2) if rank == 0 else slice(2, 5)
    rows = everything[mine].clone().requires_grad_()
    gathered, offset = gather_rows(fabric, rows)
    (gathered * weights).sum().backward()
    seen["gather"] = {
        "equal": torch.equal(gathered.detach(), everything),
        "offset": offset,
        # each process computed the same sum: twice the weights of its rows
        "gradient": torch.allclose(rows.grad, 2 * weights[mine]),
    }

    # Scores of in-batch negatives: 2 queries and 4 documents per process
    queries = torch.randn(4, 6, generator=generator)
    documents = torch.randn(8, 6, generator=generator)
    local_q = queries[2 * rank : 2 * rank + 2]
    local_d = documents[4 * rank : 4 * rank + 4]
    context = SimpleNamespace(fabric=fabric, hooks=lambda cls: [])
    tracker = SimpleNamespace(current=lambda: context)
    dual.TrainerContext, saved = tracker, dual.TrainerContext
    try:
        Dense.score_product(
            None, SimpleNamespace(value=local_q), SimpleNamespace(value=local_d)
        )
        seen["upstream_product"] = "ok"
    except RuntimeError as error:
        seen["upstream_product"] = f"RuntimeError: {error}"
    finally:
        dual.TrainerContext = saved
    workarounds.TrainerContext, saved = tracker, workarounds.TrainerContext
    try:
        scores = workarounds.InBatchNegativesScorer.score_product(
            None, SimpleNamespace(value=local_q), SimpleNamespace(value=local_d)
        )
    finally:
        workarounds.TrainerContext = saved
    others = torch.cat([documents[: 4 * rank], documents[4 * rank + 4 :]])
    expected = local_q @ torch.cat([local_d, others]).T
    seen["product"] = {
        "shape": list(scores.shape),
        "equal": torch.allclose(scores, expected),
        # the process's own documents first: the local relevances still fit
        "local_first": torch.allclose(scores[:, :4], local_q @ local_d.T),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    fabric.barrier()


def orphan(fabric, out: Path, die_with_parent: bool):
    import os

    if die_with_parent:
        from splade.workarounds.lightning import die_with_parent as die

        die()
    pids = fabric.all_gather(torch.tensor([os.getpid()])).flatten().tolist()
    if fabric.global_rank == 0:
        (out / "pids.json").write_text(json.dumps(pids))
    # Rank 0 is killed by the test. Rank 1 waits without noticing, as in
    # NCCL's collective operations (gloo's notice that a peer is gone)
    time.sleep(600)


def main():
    out, mode = Path(sys.argv[1]), sys.argv[2]
    out.mkdir(parents=True, exist_ok=True)
    fabric = L.Fabric(accelerator="cpu", devices=2, strategy="ddp")
    fabric.launch()
    if mode == "collectives":
        collectives(fabric, out)
    else:
        orphan(fabric, out, "die-with-parent" in sys.argv[3:])


if __name__ == "__main__":
    main()
