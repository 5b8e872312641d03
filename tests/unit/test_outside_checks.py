"""Bad input for the exports, the Milvus engine and the published
checkpoints is reported before any task runs, naming its key; and the
task graphs they add (dry runs, offline)"""

from pathlib import Path

import pytest
from conftest import ROOT, load
from dryrun import dry_run, of_type
from pydantic import ValidationError

from splade.checks import check
from splade.configuration import ConfigurationError
from splade.pretrained import missing_files

DEBUG = ROOT / "splade" / "debug.yaml"


def problems(*overrides, downloads=True):
    with pytest.raises(ConfigurationError) as error:
        check(load(DEBUG, *overrides), downloads=downloads)
    return error.value.problems


# --- Export


def test_an_unknown_export_format_is_refused_when_read():
    with pytest.raises(ValidationError) as error:
        load(DEBUG, "export.formats=anserini,lucene")
    assert "export.formats" in str(error.value)
    assert "'anserini', 'ciff' or 'opensearch'" in str(error.value)


def test_no_export_by_default_and_one_per_collection_of_documents(tmp_path):
    from splade.export.tasks import ExportIndex

    assert of_type(dry_run(load(DEBUG), tmp_path / "a"), ExportIndex) == []
    cfg = load(ROOT / "splade" / "normal_DistilMSE.yaml", "export.formats=ciff")
    (task,) = of_type(dry_run(cfg, tmp_path / "b"), ExportIndex)
    # MS MARCO dev and TREC DL share their documents: one export, three
    # query sets, of the index that the evaluations search
    assert sorted(task.topics) == ["msmarco_dev", "trec2019", "trec2020"]
    assert task.formats == ["ciff"] and task.scale == 100
    assert type(task.index.__xpm__.task).__name__.startswith("ExhaustiveIndexBuilder")


# --- Milvus


def test_milvus_settings_are_checked():
    found = problems(
        "retrieval.engine.name=milvus",
        "retrieval.engine.milvus.uri=localhost:19530",
        "retrieval.engine.milvus.collection=9lives",
    )
    assert any(p.startswith("retrieval.engine.milvus.uri: ") for p in found)
    assert any(p.startswith("retrieval.engine.milvus.collection: ") for p in found)
    (found,) = problems(
        "retrieval.engine.name=milvus", "retrieval.engine.milvus.token_env=root:Milvus"
    )[:1]
    assert found.startswith("retrieval.engine.milvus.token_env: ")


def test_an_unreachable_milvus_server_is_reported_when_a_run_starts():
    pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
    # (a closed local port: refused at once, no network needed)
    uri = "retrieval.engine.milvus.uri=http://127.0.0.1:9"
    (found,) = problems("retrieval.engine.name=milvus", uri)
    assert found.startswith("retrieval.engine.milvus.uri: cannot reach the Milvus")
    # Not in a dry run, nor when another engine is chosen
    check(load(DEBUG, "retrieval.engine.name=milvus", uri), downloads=False)
    check(load(DEBUG, uri), downloads=True)


def test_the_milvus_token_comes_from_the_environment(monkeypatch):
    pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
    monkeypatch.delenv("SPLADE_TEST_MILVUS_TOKEN", raising=False)
    (found,) = problems(
        "retrieval.engine.name=milvus",
        "retrieval.engine.milvus.uri=http://127.0.0.1:9",
        "retrieval.engine.milvus.token_env=SPLADE_TEST_MILVUS_TOKEN",
    )
    assert "SPLADE_TEST_MILVUS_TOKEN is not set" in found


def test_milvus_loads_the_exhaustive_index(tmp_path):
    from splade.engines.exhaustive import ExhaustiveIndexBuilder
    from splade.engines.milvus import MilvusLoader, MilvusRetriever

    tasks = dry_run(load(DEBUG, "retrieval.engine.name=milvus"), tmp_path)
    (loader,) = of_type(tasks, MilvusLoader)
    assert isinstance(loader.index.__xpm__.task, ExhaustiveIndexBuilder)
    assert loader.uri is None and loader.collection.startswith("splade_")
    retrievers = [getattr(task, "retriever", None) for task in tasks]
    assert any(isinstance(r, MilvusRetriever) for r in retrievers)


# --- Checkpoint folders


def model_folder(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text("{}")
    return folder


def test_a_checkpoint_folder_without_its_files_is_refused(tmp_path):
    config_only = model_folder(tmp_path / "config-only", "config.json")
    complete = model_folder(
        tmp_path / "complete", "config.json", "model.safetensors", "tokenizer.json"
    )
    found = problems(f"model.base_hf_id={config_only}", downloads=False)
    assert found == (
        f"model.base_hf_id: {config_only} lacks what a max model needs:"
        " model.safetensors or pytorch_model.bin or model.safetensors.index.json"
        " or pytorch_model.bin.index.json or *.gguf; tokenizer.json or vocab.txt or"
        " tokenizer.model or vocab.json",
    )
    found = problems(
        f"model.base_hf_id={complete}", f"model.query_hf_id={tmp_path}", downloads=False
    )
    assert found == (
        f"model.query_hf_id: {tmp_path} is a folder without config.json (not a"
        " Hugging Face model)",
    )
    assert missing_files(complete) == []
    # OpenSearch's inference-free layout: the IDF table besides
    assert missing_files(complete, "idf") == ["idf.json"]
    (complete / "idf.json").write_text("{}")
    assert missing_files(complete, "idf") == []


# --- The documentation's settings


def yaml_snippets(page: str):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


@pytest.mark.parametrize("page", ["exporting.md", "milvus.md"])
def test_the_documented_settings_load(page, tmp_path):
    """Every YAML snippet of the page loads on top of debug.yaml with the
    values it shows"""
    import yaml

    snippets = yaml_snippets(page)
    assert snippets
    for number, snippet in enumerate(snippets):
        child = tmp_path / f"snippet{number}.yaml"
        child.write_text(f"imports: [{DEBUG}]\n{snippet}")
        cfg = load(child)

        def compare(section, values, key):
            for name, value in values.items():
                actual = getattr(section, name)
                if isinstance(value, dict) and not isinstance(actual, dict):
                    compare(actual, value, f"{key}.{name}")
                elif isinstance(value, list):
                    assert [str(v) for v in actual] == value, f"{key}.{name}"
                else:
                    assert actual == value or str(actual) == value, f"{key}.{name}"

        compare(cfg, yaml.safe_load(snippet), "")


def test_the_configuration_names_the_formats_that_exist():
    from splade.configuration import ExportFormat
    from splade.export import FORMATS

    assert [f.value for f in ExportFormat] == list(FORMATS)
