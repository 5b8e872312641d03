"""The pretrained model named by ``model.base_hf_id``: where it is, and
whether it can be loaded

Three kinds of values are accepted: a local folder holding a Hugging Face
model, a model made by this package (a ``splade.*`` datamaestro id, e.g.
``splade.debug.bert``), or a Hugging Face hub id.
"""

from pathlib import Path
from typing import Optional

#: Prefix of the datamaestro ids of the models this package makes
PACKAGE_MODELS = "splade."

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


def problem(base_hf_id: str) -> Optional[str]:
    """Why ``base_hf_id`` cannot be loaded (None if it can)

    A hub id is checked in the local Hugging Face cache, then on the hub
    (one request, no retries: offline, the answer comes at once).
    """
    local = Path(base_hf_id).expanduser()
    if base_hf_id.startswith(PACKAGE_MODELS):
        return None
    if local.is_dir():
        # a Hugging Face model, or a LoRA adapter (peft layout)
        if any((local / name).is_file() for name in ("config.json", ADAPTER)):
            return None
        return (
            f"{base_hf_id} is a folder without config.json (not a Hugging Face model)"
            f" nor {ADAPTER} (not a LoRA adapter)"
        )

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
