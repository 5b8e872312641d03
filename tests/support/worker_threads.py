"""Under pytest-xdist, the worker's share of the cores as torch threads
(imported by tests/conftest.py before torch is, for what it sets at import)

pytest-xdist's workers share the cores: each worker, and every process it
starts (experiments, jobs, DDP ranks), gets ``OMP_NUM_THREADS`` = cores /
workers unless it is set, as a user running two experiments at once would
set it. With one thread per core in every process, torch's OpenMP threads
wait for each other at every operation while the other worker's processes
hold the cores (docs/testing.md, "Threads and CPU time of the runs").
"""

import os

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS))
    )
