"""The best checkpoint of a training run is a standard Hugging Face folder

The model is saved as xpm_torch's ``ValidationListener`` saves the best
checkpoint (``TrainerContext.copy``: the training state is saved, then its
``model`` folder is copied to ``best/<metric>``), after one training step.
Each encoder folder (``model/encoder``, ``model/query_encoder``) is then
loaded with ``transformers`` and with sentence-transformers' ``SparseEncoder``,
which must give the vectors of the package's encoders.
"""

from itertools import islice
from pathlib import Path

import pytest
import torch
from conftest import SCIFACT, SPLADE_TINY, needs_scifact
from datamaestro_ir.data import SimpleTextItem

from splade.configuration import Model
from splade.encoders import transformers_splade_max
from splade.models import splade_model

DEBUG_TEXTS = [
    "lazo bomu vipube",
    "what about mopege nina diba lazo theory analysis data",
    "vipube theory data " * 12,  # longer than the maximum lengths
    "mopege",
]


class NoTrainer:
    """The trainer's part of a training state (nothing to save here)"""

    def state_dict(self):
        return {}


def records(texts):
    return [{"text_item": SimpleTextItem(text)} for text in texts]


def best_checkpoint(folder: Path, base: Path, **settings):
    """Trains the package's SPLADE model one step from ``base`` and saves it
    as the validation listener saves the best checkpoint; returns the
    checkpoint's ``model`` folder and the trained model"""
    from xpm_torch.trainers.context import TrainerContext

    scorer, _, _ = splade_model(Model(base_hf_id=str(base), **settings))
    model = scorer.instance()
    model.initialize()
    model.encoder.load_model(base)  # what the initialization task does
    assert model.encoder.encoder is model.query_encoder.encoder

    # One training step (gradients on the masked language model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    texts = records(DEBUG_TEXTS[:2])
    scores = model.encode_queries(texts).value @ model.encode_documents(texts).value.T
    loss = scores.diagonal().neg().sum() + scores.sum() / 10
    loss.backward()
    optimizer.step()
    model.eval()

    # As ValidationListener does when the metric improves
    context = TrainerContext(
        logpath=folder / "logs",
        path=folder / "checkpoints",
        max_epoch=1,
        steps_per_epoch=1,
        trainer=NoTrainer(),
        model=model,
        optimizer=optimizer,
        fabric=None,
    )
    context.nextepoch()  # as the learner does before each epoch
    context.copy(folder / "listeners" / "bestval" / "best" / "RR@10")
    return folder / "listeners" / "bestval" / "best" / "RR@10" / "model", model


def transformers_reference(folder: Path, texts, maxlen):
    """SPLADE-max of each text, alone (no padding), with transformers"""
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(folder)
    assert type(mlm).__name__.endswith("ForMaskedLM")
    return torch.cat(list(transformers_splade_max(folder, texts, maxlen)))


def check_export(tmp_path: Path, base: Path, texts, query_maxlen, document_maxlen):
    pytest.importorskip("sentence_transformers")
    from transformers import AutoModelForMaskedLM

    from splade.encoders import load_sparse_encoder

    checkpoint, model = best_checkpoint(
        tmp_path, base, query_maxlen=query_maxlen, document_maxlen=document_maxlen
    )
    trained = model.encoder.encoder.model.state_dict()

    with torch.no_grad():
        package = {
            "encoder": model.encode_documents(records(texts)).value,
            "query_encoder": model.encode_queries(records(texts)).value,
        }
    for name, maxlen in (("encoder", document_maxlen), ("query_encoder", query_maxlen)):
        folder = checkpoint / name
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            assert (folder / file).is_file(), f"{name}/{file} is missing"

        # transformers: the trained weights, and the same representation
        saved = AutoModelForMaskedLM.from_pretrained(folder).state_dict()
        assert saved.keys() == trained.keys()
        for key, value in trained.items():
            torch.testing.assert_close(saved[key], value, rtol=0, atol=0)
        expected = transformers_reference(folder, texts, maxlen)
        torch.testing.assert_close(package[name], expected, rtol=0, atol=1e-4)

        # sentence-transformers: SPLADE-max SparseEncoder of the folder
        encoder = load_sparse_encoder(folder, maxlen)
        encode = encoder.encode_document if name == "encoder" else encoder.encode_query
        vectors = encode(
            texts, convert_to_tensor=True, convert_to_sparse_tensor=False, batch_size=3
        )
        assert vectors.shape == package[name].shape
        assert (package[name] > 0).any(dim=1).all()
        difference = (vectors.cpu() - package[name]).abs().max().item()
        assert difference <= 1e-4, (name, difference)

    # The training step changed the model: the checkpoint is not the base one
    base_weights = AutoModelForMaskedLM.from_pretrained(base).state_dict()
    assert any(not torch.equal(base_weights[key], trained[key]) for key in trained)


def test_best_checkpoint_of_embedded_model_is_standard(tmp_path, tiny_model):
    # The texts exceed both maximum lengths (and are padded in batches)
    check_export(tmp_path, tiny_model, DEBUG_TEXTS, query_maxlen=8, document_maxlen=24)


@needs_scifact
def test_best_checkpoint_of_pretrained_splade_is_standard(tmp_path):
    with (SCIFACT / "docs.tsv").open(encoding="utf-8") as fp:
        texts = [line.rstrip("\n").split("\t", 1)[1] for line in islice(fp, 6)]
    texts += ["symptoms of influenza in children", "flu"]
    check_export(tmp_path, SPLADE_TINY, texts, query_maxlen=16, document_maxlen=128)


def test_sparse_encoder_of_a_folder_is_splade_max(tiny_model):
    """Loaded without configuration, a masked language model folder is a
    SPLADE-max SparseEncoder too (sentence-transformers detects the MLM)"""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from splade.encoders import load_sparse_encoder

    detected = sentence_transformers.SparseEncoder(str(tiny_model), device="cpu")
    pooling = [m for m in detected if type(m).__name__ == "SpladePooling"]
    assert [module.pooling_strategy for module in pooling] == ["max"]
    detected.max_seq_length = 24
    ours = load_sparse_encoder(tiny_model, 24)
    kwargs = {"convert_to_tensor": True, "convert_to_sparse_tensor": False}
    torch.testing.assert_close(
        detected.encode(DEBUG_TEXTS, **kwargs), ours.encode(DEBUG_TEXTS, **kwargs)
    )
