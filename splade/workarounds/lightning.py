"""Work-arounds for Lightning (Fabric) 2.6

Lightning's ``ddp`` strategy, on one machine, starts the processes of ranks
> 0 as children of rank 0 (``_SubprocessScriptLauncher``,
lightning/fabric/strategies/launchers/subprocess_script.py:101-136) and
watches them from rank 0 (``_ChildProcessObserver``, l.192-234: when a child
dies, it kills the others and rank 0). Nothing watches rank 0 from the
children. Test: ``tests/pipeline/test_ddp_processes.py``.
"""

import ctypes
import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

#: prctl option: signal sent to the process when its parent dies
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Makes the process of a rank > 0 started by Lightning's ``ddp`` launcher
    die with rank 0, its parent (Linux only)

    When rank 0 is killed (``kill -9``, out of memory), the other ranks go
    on until a collective operation fails: with ``gloo`` (CPU) at once (the
    connection is closed), with NCCL (GPU) at the process group's timeout
    (Lightning's default: 30 minutes), holding their GPU while the job is
    already marked as failed and its rerun may start beside them. This asks
    the kernel to kill this process as soon as its parent dies. Processes
    started otherwise (Slurm's tasks, which ``srun`` watches: see
    ``splade.devices.learner_launcher``) are left as they are.
    """
    if not sys.platform.startswith("linux") or "SLURM_PROCID" in os.environ:
        return
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: %d", ctypes.get_errno())
        return
    if os.getppid() != parent:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGKILL)
