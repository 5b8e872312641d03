"""The pretrained model named by ``model.base_hf_id``: where it is, and
whether it can be loaded

Three kinds of values are accepted: a local folder holding a Hugging Face
model, a model made by this package (a ``splade.*`` datamaestro id, e.g.
``splade.debug.bert``), or a Hugging Face hub id.
"""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: Prefix of the datamaestro ids of the models this package makes
PACKAGE_MODELS = "splade."

#: What a Hugging Face model folder holds (each entry: one of these files)
FOLDER_FILES: List[Tuple[str, ...]] = [
    ("config.json",),
    (
        "model.safetensors",
        "pytorch_model.bin",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "*.gguf",
    ),
    ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json"),
]

#: What a model folder holds besides, for an architecture
#: (``model.architecture``): the IDF query side reads OpenSearch's
#: ``idf.json`` (token -> weight) from the folder
ARCHITECTURE_FILES: Dict[str, List[Tuple[str, ...]]] = {"idf": [("idf.json",)]}


def missing_files(folder: Path, architecture: str = "max") -> List[str]:
    """The files a model folder lacks (for each, the alternatives)"""
    needed = FOLDER_FILES + ARCHITECTURE_FILES.get(str(architecture), [])
    return [
        " or ".join(names)
        for names in needed
        if not any(_exists(Path(folder), name) for name in names)
    ]


def _exists(folder: Path, name: str) -> bool:
    """Whether the folder has the file ``name`` (a glob pattern: one match)"""
    if "*" in name:
        return any(folder.glob(name))
    return (folder / name).is_file()


#: The file of a LoRA adapter in ``peft``'s layout (e.g. Lion-SP's)
ADAPTER = "adapter_config.json"


def resolve(base_hf_id: str) -> str:
    """What Hugging Face's ``from_pretrained`` takes: an absolute folder path
    for a local folder or a model made by this package (prepared here, i.e.
    generated on first use), a hub id otherwise"""
    local = Path(base_hf_id).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if base_hf_id.startswith(PACKAGE_MODELS):
        from datamaestro import prepare_dataset

        return str(prepare_dataset(base_hf_id, download=True).path)
    return base_hf_id


def folder_problem(folder: Path, architecture: str = "max") -> Optional[str]:
    """Why a local model folder cannot be loaded (None if it can): the
    files it lacks (a LoRA adapter folder: its base is checked on its own,
    :func:`splade.models.adapter_problem`)"""
    if (Path(folder) / ADAPTER).is_file():
        return None
    missing = missing_files(folder, architecture)
    if not missing:
        return None
    if "config.json" in missing:
        return f"{folder} is a folder without config.json (not a Hugging Face model)"
    return f"{folder} lacks what a {architecture} model needs: " + "; ".join(missing)


def problem(base_hf_id: str, architecture: str = "max") -> Optional[str]:
    """Why ``base_hf_id`` cannot be loaded (None if it can)

    A local folder must hold the files of a Hugging Face model (and those
    of ``architecture``, :data:`ARCHITECTURE_FILES`); a hub id is checked
    in the local Hugging Face cache, then on the hub (one request, no
    retries: offline, the answer comes at once).
    """
    local = Path(base_hf_id).expanduser()
    if base_hf_id.startswith(PACKAGE_MODELS):
        return None
    if local.is_dir():
        return folder_problem(local, architecture)

    from huggingface_hub import HfApi, try_to_load_from_cache

    try:
        for name in ("config.json", ADAPTER):
            if isinstance(try_to_load_from_cache(base_hf_id, name), str):
                return None
        HfApi().model_info(base_hf_id, timeout=10)
        return None
    except Exception as e:
        return (
            f"cannot load {base_hf_id!r}: it is not a local folder, and the Hugging"
            f" Face hub cannot give it ({type(e).__name__}; offline?). Give a local"
            " folder holding a Hugging Face masked language model, e.g."
            " -c model.base_hf_id=../shared/models/splade-bert-tiny"
        )
