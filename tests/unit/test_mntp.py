"""The MNTP adaptation (splade/mntp.py): masking, the loss of the token
after each masked position, LoRA merging, and a task that resumes from its
checkpoint to the same model as an uninterrupted one"""

import json

import pytest
import torch
from conftest import document_store
from experimaestro.xpmutils import DirectoryContext

import splade.mntp as mntp
from splade.encoders.decoder import DecoderLocation, LoRA, load_causal_lm
from splade.tiny_decoder import TinyDecoderSpec, make_tiny_decoder

SPEC = TinyDecoderSpec(hidden_size=32, heads=2, kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="module")
def model(tmp_path_factory, collection):
    folder = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_decoder([text for _, text in collection.documents[:300]], folder, SPEC)
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory, collection):
    return document_store(tmp_path_factory.mktemp("store"), collection.documents[:200])


def test_masking():
    generator = torch.Generator().manual_seed(0)
    ids = torch.arange(1, 401).reshape(20, 20)
    attention = torch.ones_like(ids)
    attention[:, 15:] = 0
    attention[0, 2:] = 0  # a text of two tokens
    masked, labels = mntp.mask_tokens(ids, attention, 0.3, 999, generator)
    chosen = labels != -100
    assert not chosen[:, 0].any()  # the first token: no position predicts it
    assert not (chosen & ~attention.bool()).any()  # never padding
    assert chosen.any(dim=1).all()  # at least one per text
    assert (masked[chosen] == 999).all() and (labels[chosen] == ids[chosen]).all()
    assert (masked[~chosen] == ids[~chosen]).all()
    rate = chosen.sum() / (attention[:, 1:].sum())
    assert 0.2 < rate < 0.4


def test_the_loss_is_the_next_token_prediction_of_masked_tokens(model):
    """Each masked token is predicted by the LM head at the position before
    it: the loss equals the cross-entropy of the shifted full logits on the
    masked tokens"""
    from splade.encoders.decoder import DecoderBackbone, set_bidirectional

    lm = load_causal_lm(str(model))
    set_bidirectional(lm, True)
    backbone = DecoderBackbone(lm, bidirectional=True)
    ids = torch.randint(5, 500, (3, 12))
    attention = torch.ones_like(ids)
    attention[2, 8:] = 0
    masked, labels = mntp.mask_tokens(
        ids, attention, 0.3, 4, torch.Generator().manual_seed(1)
    )
    loss, count, _ = mntp.mntp_loss(lm, backbone, masked, attention, labels)
    hidden = backbone(input_ids=masked, attention_mask=attention).last_hidden_state
    logits = lm.lm_head(hidden)[:, :-1]
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(loss, expected)
    assert count == int((labels != -100).sum())


def test_merged_lora_computes_the_same(model):
    from peft import inject_adapter_in_model

    lm = load_causal_lm(str(model))
    inject_adapter_in_model(
        LoRA.C(r=4, alpha=8.0, dropout=0.0).instance().peft_config(), lm
    )
    for name, parameter in lm.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.1)
    ids = torch.randint(5, 500, (2, 10))
    with torch.no_grad():
        expected = lm(input_ids=ids).logits
        merged = mntp.merge_lora(lm)
        assert not any("lora_" in name for name, _ in merged.named_parameters())
        torch.testing.assert_close(merged(input_ids=ids).logits, expected)


def task(model, store, tmp_path, steps):
    return mntp.MNTPAdaptation.C(
        source=DecoderLocation.C(hf_id=str(model)),
        documents=store,
        steps=steps,
        batch_size=4,
        lr=1e-3,
        maxlen=24,
        lora=LoRA.C(r=4, alpha=8.0, dropout=0.0),
        checkpoint_interval=3,
        log_interval=1,
    ).instance(DirectoryContext(tmp_path / "job"))


def test_a_killed_task_resumes_to_the_same_model(model, store, tmp_path, monkeypatch):
    steps = 7
    task(model, store, tmp_path, steps).adapt(
        tmp_path / "whole", tmp_path / "whole.ckpt", tmp_path / "whole.runs"
    )

    # killed during step 5 (after the checkpoint of step 3)
    calls = {"count": 0}
    loss = mntp.mntp_loss

    def failing(*args):
        calls["count"] += 1
        if calls["count"] == 5:
            raise KeyboardInterrupt("killed")
        return loss(*args)

    monkeypatch.setattr(mntp, "mntp_loss", failing)
    killed = task(model, store, tmp_path, steps)
    paths = tmp_path / "model", tmp_path / "model.ckpt", tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        killed.adapt(*paths)
    assert (tmp_path / "model.ckpt" / "state.pt").is_file()
    assert not (tmp_path / "model").exists()
    state = torch.load(tmp_path / "model.ckpt" / "state.pt", weights_only=True)
    assert state["step"] == 3

    # run again: steps 4 to 7 only
    monkeypatch.setattr(mntp, "mntp_loss", loss)
    counted = {"count": 0}

    def counting(*args):
        counted["count"] += 1
        return loss(*args)

    monkeypatch.setattr(mntp, "mntp_loss", counting)
    task(model, store, tmp_path, steps).adapt(*paths)
    assert counted["count"] == steps - 3
    assert not (tmp_path / "model.ckpt").exists()

    info = json.loads((tmp_path / "model" / "mntp.json").read_text())
    assert info["steps"] == steps and info["mask_token"] == "[MASK]"
    resumed = load_causal_lm(str(tmp_path / "model")).state_dict()
    whole = load_causal_lm(str(tmp_path / "whole")).state_dict()
    original = load_causal_lm(str(model)).state_dict()
    assert set(resumed) == set(whole)
    changed = 0
    for name, value in whole.items():
        torch.testing.assert_close(resumed[name], value, msg=name)
        changed += not torch.equal(value, original[name])
    assert changed > 0  # the LoRA updates were merged
    assert list((tmp_path / "runs").glob("events.out.tfevents.*"))
