"""The benchmarks (``bench/``) as a package: run as ``python -m
bench.<name>`` from the repository root, each through ``bench.common`` and
the engines' public interfaces only, data and models as arguments; every
command of BENCHMARKS.md is accepted by its benchmark's parser"""

import ast
import importlib
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench"
MODULES = sorted(
    path.stem for path in BENCH.glob("*.py") if path.stem not in ("__init__",)
)
SCRIPTS = [name for name in MODULES if name != "common"]


@pytest.fixture(autouse=True)
def no_thread_settings(monkeypatch):
    """The benchmarks set one thread in every library
    (``bench.common.one_thread``) in their process; here that process is the
    test process, where numba refuses another number of threads once its
    pool is launched (other tests of the worker would fail): not here"""
    from bench import common

    monkeypatch.setattr(common, "one_thread", lambda numba=True: None)


def imports(path: Path):
    """(module names imported, whether sys.path is changed) of a file"""
    tree = ast.parse(path.read_text())
    names, patches = [], False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and node.attr == "path":
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                patches = True
    return names, patches


@pytest.mark.parametrize("name", MODULES)
def test_no_path_patching_and_no_script_imports_another(name):
    names, patches = imports(BENCH / f"{name}.py")
    assert not patches, f"bench/{name}.py changes sys.path"
    others = {
        n.split(".")[1]
        for n in names
        if n.startswith("bench.") and n.split(".")[1] in MODULES
    }
    assert others <= {"common"}, f"bench/{name}.py imports {others}"
    # the package's engines through their public names only
    private = [
        n
        for n in names
        if n.startswith("splade.") and any(p.startswith("_") for p in n.split("."))
    ]
    assert not private, f"bench/{name}.py imports private names: {private}"


#: The benchmarks of the engines (the others time encoders and training,
#: whose internals they reach on purpose)
ENGINE_BENCHMARKS = [
    n
    for n in MODULES
    if n not in ("encoding", "gpu_check", "gpu_throughput", "local_collections")
]


def test_engine_benchmarks_read_no_private_attribute():
    """No ``x._name`` read on an object (pyterrier-pisa's ``_ctxt``, the
    exhaustive engine's ``_accumulate``...)"""
    for name in ENGINE_BENCHMARKS:
        tree = ast.parse((BENCH / f"{name}.py").read_text())
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ]
        assert not private, f"bench/{name}.py reads {private}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_states_the_defaults_of_data_and_models(name):
    module = importlib.import_module(f"bench.{name}")
    parser = module.parser()
    assert parser.prog == f"python -m bench.{name}"
    for action in parser._actions:
        if action.dest in ("data", "model"):
            assert "../shared/" in action.help, (name, action.dest, action.help)
        # any other default folder or file is stated too (not a count such
        # as gpu_throughput's --documents)
        if isinstance(action.default, Path):
            assert "(default: " in action.help, (name, action.dest, action.help)
            if str(action.default).startswith(str(ROOT.parent / "shared")):
                assert "../shared/" in action.help, (name, action.dest)


@pytest.mark.parametrize(
    "name, argv",
    [
        ("splade_mix", ["--data", "{missing}", "--workdir", "{tmp}"]),
        ("retrieval_engines", ["--data", "{missing}", "--workdir", "{tmp}"]),
        ("encoding", ["--model", "{missing}", "--no-write"]),
        ("gpu_check", ["--model", "{missing}"]),
        ("local_collections", ["--data", "{missing}", "--workdir", "{tmp}"]),
        ("shards", ["--encode", "8", "--model", "{missing}", "--docs", "10"]),
        ("approximate", ["--data", "{missing}", "--workdir", "{tmp}"]),
        ("milvus", ["--data", "{missing}", "--workdir", "{tmp}"]),
        ("debug_lexical", ["--tokenizer", "{missing}"]),
    ],
)
def test_a_missing_folder_stops_before_any_work(name, argv, tmp_path, capsys):
    missing = tmp_path / "absent"
    argv = [a.format(missing=missing, tmp=tmp_path / "work") for a in argv]
    module = importlib.import_module(f"bench.{name}")
    with pytest.raises(SystemExit) as stopped:
        module.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert str(missing) in error and argv[argv.index(str(missing)) - 1] in error
    # nothing was made
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def benchmark_commands():
    """Every ``python -m bench.<name> ...`` command of BENCHMARKS.md (in code
    spans and blocks, continuation lines joined)"""
    text = (ROOT / "BENCHMARKS.md").read_text().replace("\\\n", " ")
    found = re.findall(r"python -m (bench\.\w+)([^`\n]*)", text)
    return [(module, shlex.split(rest)) for module, rest in found]


def test_benchmarks_md_runs_its_benchmarks_as_modules():
    text = (ROOT / "BENCHMARKS.md").read_text()
    assert not re.search(r"python bench/\w+\.py", text), "a command runs a file"
    assert len(benchmark_commands()) >= 8


@pytest.mark.parametrize(
    "module, argv", benchmark_commands(), ids=lambda v: str(v)[:60]
)
def test_benchmarks_md_commands_are_accepted(module, argv):
    assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module
    parser = importlib.import_module(module).parser()
    # placeholders such as /tmp/eb/work/<collection> are paths as any other
    parser.parse_args(argv)


# --- bench.common


def test_zipf_vectors():
    from bench.common import zipf_vectors

    def draw(seed):
        rng = np.random.default_rng(seed)
        permutation = rng.permutation(1000)
        return permutation, zipf_vectors(
            rng,
            500,
            draws=50,
            exponent=1.2,
            permutation=permutation,
            mean=-1.0,
            sigma=0.5,
            max_terms=20,
        )

    permutation, matrix = draw(0)
    assert (draw(0)[1] != matrix).nnz == 0  # seeded
    lengths = np.diff(matrix.indptr)
    assert lengths.max() == 20 and lengths.min() >= 1
    for row in range(5):  # distinct, sorted term ids
        terms = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
        assert np.all(np.diff(terms) > 0)
    # rank r's term is drawn more often than rank 10 r's, and weighs less
    frequency = np.bincount(matrix.indices, minlength=1000)
    assert frequency[permutation[0]] > frequency[permutation[10]] > 0
    column = matrix.tocsc()
    mean = [column[:, permutation[r]].data.mean() for r in (0, 50)]
    assert mean[0] < mean[1]


def test_collection_files_round_trip(tmp_path):
    import scipy.sparse as sp

    from bench import common

    rng = np.random.default_rng(0)
    documents = sp.random(120, common.VOCABULARY, 0.001, "csr", np.float32, rng)
    queries = sp.random(7, common.VOCABULARY, 0.001, "csr", np.float32, rng)
    common.write_collection(tmp_path, [documents[:50], documents[50:]], queries)
    assert common.is_collection(tmp_path)
    assert (common.load_documents(tmp_path) != documents).nnz == 0
    assert (common.load_queries(tmp_path) != queries).nnz == 0
    chunks = list(common.iter_chunks(tmp_path, chunk=40))
    assert [first for first, *_ in chunks] == [0, 40, 80]


def test_exact_tops_and_recall():
    import scipy.sparse as sp

    from bench import common

    rng = np.random.default_rng(1)
    documents = sp.random(300, 50, 0.2, "csc", np.float32, rng)
    queries = sp.random(20, 50, 0.3, "csr", np.float32, rng)
    tops = common.exact_tops(documents, queries, 10)
    for q, top in enumerate(tops):
        scores = documents @ queries[q].toarray().ravel()
        order = np.lexsort((np.arange(300), -scores))
        expected = order[:10][scores[order[:10]] > 0]
        assert top.tolist() == expected.tolist()
    assert common.recall(tops, tops) == 1.0
    halves = [top[:5] for top in tops]
    assert common.recall(halves, tops) == pytest.approx(
        np.mean([min(5, len(t)) / len(t) for t in tops if len(t)])
    )


def test_a_build_runs_in_a_child_process_once(tmp_path):
    """``common.build`` builds an index in a child process, records its
    cost, and does not build it again; ``open_search`` searches it through
    the engine (exhaustive: the exact top-k)"""
    import scipy.sparse as sp

    from bench import common

    rng = np.random.default_rng(2)
    documents = sp.random(400, common.VOCABULARY, 0.002, "csr", np.float32, rng)
    queries = sp.random(10, common.VOCABULARY, 0.002, "csr", np.float32, rng)
    common.write_collection(tmp_path, [documents], queries)
    stats = common.build(tmp_path, "exhaustive", "exhaustive")
    assert stats["cpu_s"] > 0 and stats["rss_mib"] > 10 and stats["size_mib"] > 0
    written = (tmp_path / "exhaustive" / "build.json").stat().st_mtime_ns
    assert common.build(tmp_path, "exhaustive", "exhaustive") == stats
    assert (tmp_path / "exhaustive" / "build.json").stat().st_mtime_ns == written
    search = common.open_search("exhaustive", tmp_path / "exhaustive")
    queries = common.load_queries(tmp_path)
    found = [search(*common.query(queries, q), 10) for q in range(10)]
    exact = common.exact_tops(documents.tocsc(), queries, 10)
    assert common.recall(found, exact) == 1.0


# --- bench.debug_lexical


def test_debug_lexical_pieces_shared_by_words_lower_bm25():
    """Cutting the debug collection's made-up words into pieces that other
    words share (here: their first two letters and the rest) lowers BM25,
    and the count of words sharing a piece is right"""
    from bench.debug_lexical import evaluate, pieces_shared
    from splade.debug_data import generate

    collection = generate()
    words = evaluate(collection, lambda text: text.lower().split())
    cut = lambda text: [p for w in text.split() for p in (w[:2], w[2:]) if p]  # noqa: E731
    pieces = evaluate(collection, cut)
    assert 0 < pieces["nDCG@10"] < words["nDCG@10"] < 1
    assert 0 < pieces["RR@10"] < words["RR@10"]
    count, mean, sharing = pieces_shared(collection, cut)
    assert count == 200 and 1 < mean <= 2
    made_up = {w for g in collection.document_words + collection.query_words for w in g}
    starts = [w[:2] for w in made_up]
    assert sharing >= sum(starts.count(s) > 1 for s in starts)


# --- bench.approximate


def test_closeness_of_the_exact_top():
    """The 10th / 11th score gap and the heaviest terms' share of a query's
    weight, as bench.approximate reports them"""
    from bench.approximate import closeness

    top = np.arange(20, 0, -1, dtype=float)  # 20, 19, ..., 1: 10th 11, 11th 10
    tight = np.array([10.0] * 10 + [9.95] * 5)  # a gap of 0.5%
    weights = [np.array([4.0, 1.0] + [0.25] * 20), np.ones(40)]
    unmatched = np.zeros(11)  # a query matching no document
    found = closeness([top, tight, tight[:10], unmatched], weights, heaviest=(1, 10))
    assert found["median_gap"] == pytest.approx((1 / 11 + 0.005) / 2)
    # the short top and the query without a match are left out
    assert found["under_1pc"] == pytest.approx(0.5)
    assert found["weight_1"] == pytest.approx((4 / 10 + 1 / 40) / 2)
    assert found["weight_10"] == pytest.approx((7 / 10 + 10 / 40) / 2)
