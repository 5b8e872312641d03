"""Data parallelism's one collective the package's code needs (ground
floor: torch only)"""

import torch

__all__ = ["gather_rows"]


def gather_rows(fabric, rows: torch.Tensor):
    """The rows of every training process, in the order of their ranks,
    and where this process's rows begin

    Gradients flow back to each process's rows (Lightning's ``all_gather``
    with ``sync_grads``: each process receives the sum over the processes
    of the gradients of its rows; data parallelism then averages the
    parameters' gradients). Processes may have different numbers of rows.
    """
    if fabric is None or fabric.world_size == 1:
        return rows, 0
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = fabric.all_gather(count).flatten().tolist()
    largest = max(counts)
    padded = rows
    if rows.shape[0] < largest:
        padding = rows.new_zeros((largest - rows.shape[0], *rows.shape[1:]))
        padded = torch.cat([rows, padding], dim=0)
    gathered = fabric.all_gather(padded, sync_grads=True)
    parts = [gathered[rank, :n] for rank, n in enumerate(counts)]
    return torch.cat(parts, dim=0), sum(counts[: fabric.global_rank])
