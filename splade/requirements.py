"""What each stage of the experiment asks of a launcher

Each section of the configuration gives the requirements of its tasks
(``bm25.requirements``, ``indexation.requirements``,
``retrieval.requirements``, ``learner.requirements``,
``mining.requirements``, e.g. ``duration=2 days & cuda(mem=16G)``), and a
test collection can override the first three
(``data.test_requirements.<name>``). experimaestro's launcher finder turns
them into launchers (``launchers.py``: the local machine by default, Slurm
in ``launchers/slurm``).
"""

import copy
import os
from typing import Optional

from experimaestro.launcherfinder import find_launcher
from experimaestro.launcherfinder.parser import parse
from experimaestro.launcherfinder.specs import HostRequirement, RequirementUnion
from experimaestro.launchers.slurm import SlurmLauncher

from splade.configuration import (
    ConfigurationError,
    Learner,
    SPLADEConfiguration,
    TestRequirements,
)

__all__ = [
    "Launchers",
    "learner_launcher",
    "node_requirement",
    "collection_requirements",
]


def collection_requirements(
    cfg: SPLADEConfiguration, key: Optional[str] = None
) -> TestRequirements:
    """The requirements of the tasks of test collection ``key`` (None: any
    other task): those of ``data.test_requirements.<key>`` where given,
    else those of the ``bm25``, ``indexation`` and ``retrieval`` sections"""
    specific = cfg.data.test_requirements.get(key) if key else None
    specific = specific or TestRequirements()
    return TestRequirements(
        bm25=specific.bm25 or cfg.bm25.requirements,
        indexation=specific.indexation or cfg.indexation.requirements,
        retrieval=specific.retrieval or cfg.retrieval.requirements,
    )


class Launchers:
    """The launchers of an experiment's (or a variant's) tasks, stage by
    stage"""

    def __init__(self, cfg: SPLADEConfiguration):
        self.cfg = cfg

    def bm25(self, key: Optional[str] = None):
        """BM25 index and retrieval, and the CPU tasks (conversions,
        merges) of test collection ``key``"""
        return find_launcher(collection_requirements(self.cfg, key).bm25)

    def indexation(self, key: Optional[str] = None):
        """Encoding and indexing the documents of test collection ``key``"""
        return find_launcher(collection_requirements(self.cfg, key).indexation)

    def retrieval(self, key: Optional[str] = None):
        """Query encoding, retrieval and evaluation on test collection
        ``key``"""
        return find_launcher(collection_requirements(self.cfg, key).retrieval)

    def learner(self):
        """The learner (:func:`learner_launcher`)"""
        return learner_launcher(self.cfg.learner)

    def mntp(self):
        """The MNTP adaptation of a decoder (``model.mntp``)"""
        from splade.models import adaptation_settings

        return find_launcher(adaptation_settings(self.cfg.model).requirements)

    def mining(self):
        """The mining and teacher scoring tasks of SPLADE++ SelfDistil"""
        return find_launcher(self.cfg.mining.requirements)


def node_requirement(requirement: str, devices: int) -> HostRequirement:
    """What one node of the learner needs: ``devices`` times what one
    process needs (``requirement``, e.g. ``duration=4 days & cuda(mem=24G)
    & cpu(cores=8, mem=32G)`` gives, for 4 devices, 4 GPUs of 24 GB, 32
    cores and 128 GB of memory: ``cuda(mem=24G)*4`` in experimaestro's
    grammar); the duration is unchanged"""
    parsed = parse(requirement)
    if devices == 1:
        return parsed
    alternatives = []
    for simple in parsed.requirements:
        node = copy.deepcopy(simple)
        node.accelerators = simple.accelerators * devices
        node.cpu.cores = simple.cpu.cores * devices
        node.cpu.memory = simple.cpu.memory * devices
        alternatives.append(node)
    return RequirementUnion(*alternatives)


def learner_launcher(learner: Learner):
    """The launcher of the learner: the one ``launchers.py`` gives for what a
    node needs (:func:`node_requirement`), set, if it is a Slurm launcher,
    to run ``learner.devices`` tasks (processes) on each of
    ``learner.num_nodes`` nodes, as Lightning expects (its Slurm environment
    requires ``SLURM_NTASKS_PER_NODE == devices`` and ``SLURM_NNODES ==
    num_nodes``; experimaestro's job script runs ``srun`` on the job's
    tasks, and treats the ranks > 0 as followers)

    experimaestro's requirement grammar has no number of nodes: it is set
    here. Other launchers run the task on one machine, where Lightning
    starts the ``devices`` processes: ``num_nodes`` must then be 1.
    """
    launcher = find_launcher(node_requirement(learner.requirements, learner.devices))
    if isinstance(launcher, SlurmLauncher):
        options = {"nodes": learner.num_nodes, "ntasks_per_node": learner.devices}
        # the node's cores, shared by its tasks (launchers.py made one task
        # per GPU: another number of tasks, e.g. CPU processes, shares them)
        tasks, cores = launcher.options.ntasks_per_node, launcher.options.cpus_per_task
        if tasks and cores and tasks != learner.devices:
            options["cpus_per_task"] = str(
                max(int(cores) * tasks // learner.devices, 1)
            )
        configured = launcher.config(**options)
        # srun then ends the job when a task fails, instead of leaving the
        # others waiting for it (the environment of sbatch is the job's)
        environment = launcher.launcherenv or dict(os.environ)
        configured.launcherenv = {**environment, "SLURM_KILL_BAD_EXIT": "1"}
        return configured
    if learner.num_nodes > 1:
        raise ConfigurationError(
            f"learner.num_nodes: {learner.num_nodes} nodes need a launcher that"
            f" starts the task on each of them (Slurm, launchers/slurm), not"
            f" {launcher}"
        )
    return launcher
