"""Training on several processes (``learner.devices``, ``learner.num_nodes``):
the configuration, the upstream behaviours the work-arounds of
``splade/workarounds/`` (``xpm_torch.py``, ``xpmir.py``, ``lightning.py``)
deal with, and their fixes

The tests that start several processes (Lightning Fabric's ``ddp`` on
CPU, ``gloo``): tests/pipeline/test_ddp_processes.py.
"""

import copy
import itertools
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, load

DEBUG = ROOT / "splade" / "debug.yaml"

# --- Configuration


def test_one_process_by_default():
    cfg = load(DEBUG)
    assert (cfg.learner.devices, cfg.learner.num_nodes) == (1, 1)


def test_the_global_batch_must_be_divisible_by_the_processes():
    from splade.training import problems

    assert problems(load(DEBUG, "learner.devices=2", "learner.num_nodes=2")) == []
    (problem,) = problems(load(DEBUG, "learner.devices=3"))
    assert problem.startswith("learner.optimization.batch_size: the global batch (32)")


def test_the_processes_do_not_change_the_task_identifiers(tmp_path):
    """devices and num_nodes are Meta settings of the learner's Fabric
    configuration: the learner, and all the tasks after it, keep their
    identifiers"""
    from dryrun import dry_run, of_type
    from xpm_torch.learner import Learner

    one = dry_run(load(DEBUG), tmp_path / "one")
    two = dry_run(load(DEBUG, "learner.devices=2"), tmp_path / "two")
    (learner_one,) = of_type(one, Learner)
    (learner_two,) = of_type(two, Learner)
    assert learner_one.fabric_config.devices == "1"
    assert learner_two.fabric_config.devices == "2"
    assert learner_two.fabric_config.strategy == "ddp"

    def identifiers(tasks):
        return sorted(task.__xpm__.identifier.all.hex() for task in tasks)

    assert identifiers(one) == identifiers(two)


def test_the_fabric_has_the_configured_processes():
    """On CPU, devices=2 gives 2 processes (gloo); a Slurm job with fewer
    tasks than devices is refused before training (Lightning would train
    with the job's tasks only)"""
    from splade.devices import fabric

    built = fabric("auto", devices=2).instance().get_fabric()
    assert built.world_size == 2
    assert type(built.strategy).__name__ == "DDPStrategy"

    slurm = dict(
        SLURM_NTASKS="1",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_JOB_NAME="learner",
        SLURM_NODELIST="localhost",
        SLURM_JOB_ID="1",
    )
    saved = dict(os.environ)
    os.environ.update(slurm)
    try:
        with pytest.raises(RuntimeError, match="1 training process"):
            fabric("auto", devices=2).instance().get_fabric()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_node_requirement():
    from splade.requirements import node_requirement

    GiB = 1024**3
    (node,) = node_requirement(
        "duration=4 days & cuda(mem=24G) & cpu(cores=8, mem=32GiB)", 4
    ).requirements
    assert len(node.cuda_gpus) == 4
    assert (node.cpu.cores, node.cpu.memory) == (32, 128 * GiB)
    assert node.duration == 4 * 24 * 3600
    (one,) = node_requirement("duration=4 days & cuda(mem=24G)", 1).requirements
    assert len(one.cuda_gpus) == 1


@pytest.fixture
def launchers(monkeypatch):
    """Uses the launchers.py of launchers/<name>"""
    from experimaestro.launcherfinder.registry import LauncherRegistry

    def use(name: str):
        monkeypatch.setattr(
            LauncherRegistry, "CURRENT_CONFIG_DIR", ROOT / "launchers" / name
        )

    return use


def test_the_learner_job_has_one_slurm_task_per_process(launchers):
    from splade.requirements import learner_launcher

    launchers("slurm")
    cfg = load(DEBUG, "learner.requirements=duration=2 days & cuda(mem=24G)")
    options = learner_launcher(cfg.learner).options
    assert (options.nodes, options.ntasks_per_node, options.gpus_per_node) == (
        1,
        1,
        1,
    )

    cfg = load(
        DEBUG,
        "learner.requirements=duration=2 days & cuda(mem=24G) & cpu(cores=4,mem=16G)",
        "learner.devices=4",
        "learner.num_nodes=2",
    )
    launcher = learner_launcher(cfg.learner)
    args = launcher.options.args()
    for expected in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--cpus-per-task=4",
        f"--mem={4 * 16 * 10**9 // 2**20}M",
        "--partition=gpu-24g",
    ):
        assert expected in args, args
    assert launcher.launcherenv["SLURM_KILL_BAD_EXIT"] == "1"

    # 2 CPU processes: the node's 8 cores, 4 per task
    cfg = load(
        DEBUG,
        "learner.requirements=duration=2 days & cpu(cores=4)",
        "learner.devices=2",
    )
    args = learner_launcher(cfg.learner).options.args()
    for expected in ("--ntasks-per-node=2", "--cpus-per-task=4", "--partition=cpu"):
        assert expected in args, args

    # 4 GPUs of 40 GB: only the 80 GB partition has them
    cfg = load(
        DEBUG,
        "learner.requirements=duration=2 days & cuda(mem=40G)",
        "learner.devices=4",
    )
    assert "--partition=gpu-80g" in learner_launcher(cfg.learner).options.args()


def test_several_nodes_need_a_launcher_that_reaches_them(launchers):
    from experimaestro.launcherfinder.registry import LauncherNotFoundError

    from splade.configuration import ConfigurationError
    from splade.requirements import learner_launcher

    launchers("single-gpu")
    one_gpu = "learner.requirements=duration=2 days & cuda(mem=24G)"
    assert learner_launcher(load(DEBUG, one_gpu).learner) is not None
    with pytest.raises(ConfigurationError, match="learner.num_nodes: 2 nodes"):
        learner_launcher(load(DEBUG, one_gpu, "learner.num_nodes=2").learner)
    # two GPUs do not fit this machine
    with pytest.raises(LauncherNotFoundError):
        learner_launcher(load(DEBUG, one_gpu, "learner.devices=2").learner)


# --- Upstream behaviours and their work-arounds


def test_upstream_local_batch_is_the_global_batch_over_the_processes():
    """xpm_torch gives each process batch_size // world_size samples (no
    more: a global batch not divisible by the processes would shrink, hence
    the configuration check)"""
    from xpm_torch.trainers.context import TrainerContext

    context = TrainerContext.__new__(TrainerContext)
    context.fabric = SimpleNamespace(world_size=2, is_global_zero=False)
    assert context.get_local_batch_size(128) == 64
    context.fabric = SimpleNamespace(world_size=3, is_global_zero=False)
    assert context.get_local_batch_size(32) == 10


def test_upstream_spawning_strategies_need_a_launch_function():
    """Lightning refuses launch() without a function for strategies that
    spawn processes (xpm_torch's Learner calls it so): they are refused when
    the Fabric is built, ddp is accepted"""
    import lightning as L

    from splade.workarounds.xpm_torch import check_launches_without_function

    for strategy in ("ddp_spawn", "ddp_fork"):
        fabric = L.Fabric(accelerator="cpu", devices=2, strategy=strategy)
        with pytest.raises(TypeError, match="needs to be called with a function"):
            fabric.launch()
        with pytest.raises(ValueError, match="use 'ddp'"):
            check_launches_without_function(fabric)
    check_launches_without_function(
        L.Fabric(accelerator="cpu", devices=2, strategy="ddp")
    )


def shards(dataset, num_shards: int, count: int):
    """The first ``count`` items of each shard of a fresh copy of
    ``dataset`` (as every data loader worker or process gets one)"""
    return [
        list(
            itertools.islice(
                copy.deepcopy(dataset).iter_shard(shard, num_shards), count
            )
        )
        for shard in range(num_shards)
    ]


def global_batches(per_shard, size: int):
    """The global batches of processes taking ``size / len(per_shard)``
    items each, as sets"""
    local = size // len(per_shard)
    steps = min(len(items) for items in per_shard) // local
    return [
        sorted(
            x for items in per_shard for x in items[step * local : (step + 1) * local]
        )
        for step in range(steps)
    ]


def test_upstream_line_shards_lose_lines_at_their_boundaries(tmp_path):
    """xpm_torch's LineFileDataset (teacher TSV files) shares a file in
    byte ranges: a line that begins at the start of a range is read by no
    shard"""
    from xpm_torch.datasets import LineFileDataset

    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line{i:04d}\n" for i in range(4)))  # 9 bytes each
    read = shards(LineFileDataset(path, str), 4, 10)
    assert read == [["line0000"], [], [], []]


def test_interleaved_lines(tmp_path):
    """Shards take lines in turns: every line once; the global batch of 2
    processes is the batch of one; each process resumes from rank 0's
    state where it was"""
    from splade.workarounds.xpm_torch import InterleavedLines

    path = tmp_path / "lines.txt"
    lines = [f"line {i} " + "x" * (i % 7) for i in range(103)]
    path.write_text("".join(f"{line}\n" for line in lines))
    dataset = InterleavedLines(path, str)
    for num_shards in (1, 2, 4):
        read = shards(dataset, num_shards, 1000)
        assert sorted(sum(read, [])) == sorted(lines)
    assert global_batches(shards(dataset, 1, 100), 8) == global_batches(
        shards(dataset, 2, 50), 8
    )

    # rank 0 has read 3 lines (and rank 1 too), then its state is saved
    ranks = [copy.deepcopy(dataset) for _ in range(2)]
    iterators = [ranks[rank].iter_shard(rank, 2) for rank in range(2)]
    for iterator in iterators:
        for _ in range(3):
            next(iterator)
    state = ranks[0].state_dict()
    for rank in range(2):
        resumed = copy.deepcopy(dataset)
        resumed.load_state_dict(json.loads(json.dumps(state)))
        assert next(resumed.iter_shard(rank, 2)) == lines[6 + rank]
        assert next(iterators[rank]) == lines[6 + rank]


class _Record(dict):
    pass


def test_upstream_buffered_samplers_save_the_state_of_records_not_given():
    """xpmir's SamplerAdapter reads 64 records ahead (to fetch their texts at
    once) and saves the state of its source: resumed, it skips the records
    read but not given"""
    from xpm_torch.datasets import IndexedDataset
    from xpmir.letor.samplers.adapters import BufferedProcessingDataset

    from splade.workarounds.xpmir import _ProcessedRecords

    source = IndexedDataset(list(range(1000)))
    upstream = BufferedProcessingDataset(copy.deepcopy(source), [], 64)
    iterator = upstream.iter_shard(0, 1)
    assert [next(iterator) for _ in range(10)] == list(range(10))
    assert upstream.state_dict() == {"position": 63}  # the 64th record

    class Double:
        def process_batch(self, records):
            return [2 * record for record in records]

    fixed = _ProcessedRecords(copy.deepcopy(source), [Double()], 64)
    iterator = fixed.iter_shard(0, 1)
    assert [next(iterator) for _ in range(10)] == [2 * i for i in range(10)]
    assert fixed.state_dict() == {"position": 9}  # IndexedDataset: the last one


def test_upstream_triplets_start_again_when_resumed():
    """xpmir's TripletBasedSampler shares triplets in turns (as
    InterleavedShards) but has no state; TripletsSampler resumes"""
    from xpmir.letor.samplers import TripletBasedSampler

    from splade.workarounds.xpmir import TripletsSampler

    triplets = [({"id": f"q{i}"}, {"id": f"p{i}"}, {"id": f"n{i}"}) for i in range(20)]
    source = SimpleNamespace(iter=lambda: iter(triplets))
    upstream = TripletBasedSampler.__new__(TripletBasedSampler)
    upstream.source = source
    fixed = TripletsSampler.__new__(TripletsSampler)
    fixed.source = source
    for sampler in (upstream, fixed):
        read = shards(sampler.as_dataset(), 2, 10)
        assert [item.query["id"] for item in read[1]] == [
            f"q{i}" for i in range(1, 20, 2)
        ]

    assert upstream.as_dataset().state_dict() == {}
    dataset = fixed.as_dataset()
    iterator = dataset.iter_shard(1, 2)
    for _ in range(3):
        next(iterator)
    resumed = fixed.as_dataset()
    resumed.load_state_dict(dataset.state_dict())
    assert next(resumed.iter_shard(0, 2)).query["id"] == "q6"


def model_based(cls):
    """A model-based sampler of 50 queries (each with a relevant document
    and 5 BM25 negatives), without a retriever"""
    from datamaestro_ir.data import SimpleTextItem

    sampler = cls.__new__(cls)
    sampler.document = lambda docid: {
        "id": docid,
        "text_item": SimpleTextItem(f"text {docid}"),
    }
    sampler._store = SimpleNamespace(document_ext=lambda docid: sampler.document(docid))
    sampler.topics = [
        (f"q{i}", [(f"pos{i}", 1, 0.0)], [(f"neg{i}_{j}", 0, 1.0) for j in range(5)])
        for i in range(50)
    ]
    random = np.random.RandomState(0)
    sampler.random = random
    sampler._seed = int(random.randint(2**31))
    return sampler


def pairs(items):
    def docid(document):
        return getattr(document, "document", document)["id"]

    return [
        (item.query["text_item"].text, docid(item.positive), docid(item.negative))
        for item in items
    ]


def test_upstream_model_based_samplers_ignore_their_shard():
    """xpmir's model-based samplers draw from the random state of the
    sampler whatever the shard: every data loader worker and process gives
    the same pairs"""
    from xpmir.letor.samplers import PairwiseModelBasedSampler

    first, second = shards(model_based(PairwiseModelBasedSampler).as_dataset(), 2, 20)
    assert pairs(first) == pairs(second)


def test_hard_negatives_are_drawn_once_whatever_the_shards():
    from splade.workarounds.xpmir import HardNegativesSampler

    dataset = model_based(HardNegativesSampler).as_dataset()
    (alone,) = shards(dataset, 1, 40)
    two = shards(dataset, 2, 20)
    assert pairs(two[0]) != pairs(two[1])
    assert pairs(alone)[0::2] == pairs(two[0])
    assert pairs(alone)[1::2] == pairs(two[1])
    negatives = {negative for _, _, negative in pairs(alone)}
    assert len(negatives) > 20  # drawn, not one per query

    iterator = dataset.iter_shard(0, 2)
    for _ in range(5):
        next(iterator)
    resumed = model_based(HardNegativesSampler).as_dataset()
    resumed.load_state_dict(dataset.state_dict())
    assert pairs([next(resumed.iter_shard(1, 2))]) == pairs(alone)[11:12]


def test_data_loader_workers_resume_where_they_were(tmp_path):
    """With data loader workers (2, the default), a data loader restored
    from a saved state gives the batches an uninterrupted one would"""
    from torchdata.stateful_dataloader import StatefulDataLoader
    from xpm_torch.datasets import InfiniteDataset

    from splade.workarounds.xpm_torch import InterleavedLines

    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i}\n" for i in range(50)))

    def loader():
        dataset = InfiniteDataset(InterleavedLines(path, str))
        return StatefulDataLoader(dataset, batch_size=4, num_workers=2)

    uninterrupted = iter(loader())
    expected = [next(uninterrupted) for _ in range(10)]
    first = loader()
    iterator = iter(first)
    for _ in range(5):
        next(iterator)
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    iterator = iter(resumed)
    assert [next(iterator) for _ in range(5)] == expected[5:]
    lines = sorted(line for batch in expected[:6] for line in batch)
    assert len(set(lines)) == 24  # 6 batches of 4 different lines
