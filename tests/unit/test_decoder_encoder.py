"""SPLADE over causal language models (splade/encoders/decoder.py): the
vectors and gradients of SPLADE-max written with ``transformers`` alone, for
Llama, Qwen2, Qwen3 and Mistral, LM head tied or not, causal or
bidirectional, with echo, LoRA, saving and loading"""

import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED
from datamaestro_ir.data import SimpleTextItem

from splade.encoders.decoder import (
    DecoderLocation,
    LoRA,
    decoder_encoders,
    export_merged,
    load_causal_lm,
    load_tokenizer,
    read_settings,
)
from splade.tiny_decoder import make_tiny_decoder

TEXTS = [
    "lazo bomu vipube mopege",
    "what about mopege nina diba lazo theory",
    "theory",
    "analysis data lazo vipube nina",
]

ARCHITECTURES = ["llama", "qwen2", "qwen3", "mistral"]


def records(texts=TEXTS):
    return [{"text_item": SimpleTextItem(text)} for text in texts]


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory, collection):
    """The generated Llama and its tokenizer (the debug vocabulary)"""
    folder = tmp_path_factory.mktemp("tiny-llama")
    texts = [text for _, text in collection.documents[:500]] + TEXTS
    make_tiny_decoder(texts, folder)
    return folder


def make_model(folder: Path, architecture: str, tied: bool, source: Path) -> Path:
    """A random causal LM of a Hugging Face architecture, with the tokenizer
    of ``source``"""
    import transformers

    tokenizer = load_tokenizer(str(source))
    classes = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
        "mistral": ("MistralConfig", "MistralForCausalLM"),
    }
    config_class, model_class = (
        getattr(transformers, n) for n in classes[architecture]
    )
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        tie_word_embeddings=tied,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(1)
    model = model_class(config)
    if not tied:
        torch.nn.init.normal_(model.lm_head.weight, std=0.5)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def encoders(folder, **options):
    """The (document, query) encoders of a model folder, weights loaded"""
    options.setdefault("query_maxlen", 8)
    options.setdefault("document_maxlen", 16)
    document, query, _ = decoder_encoders(
        DecoderLocation.C(hf_id=str(folder)), name=str(folder), **options
    )
    document = document.instance()
    document.encoder.load_pretrained()
    document.eval()
    return document


def reference(
    folder, texts, maxlen, bidirectional, echo=False, scale=1.0, bias=0.0
):
    """SPLADE-max with transformers alone: the LM's logits of every token
    (bidirectional: a padding-only 4D mask), the maximum over the pooled
    tokens of log(1 + ReLU(scale * logits + bias)); returns (vectors,
    model)"""
    from transformers.masking_utils import create_bidirectional_mask

    model = load_causal_lm(str(folder))
    tokenizer = load_tokenizer(str(folder))
    if echo:
        prefix = tokenizer("")["input_ids"]
        contents = tokenizer(
            texts,
            add_special_tokens=False,
            truncation=True,
            max_length=maxlen - len(prefix),
        )["input_ids"]
        ids = [prefix + c + c for c in contents]
        pooled = [[0] * (len(prefix) + len(c)) + [1] * len(c) for c in contents]
    else:
        ids = tokenizer(texts, truncation=True, max_length=maxlen)["input_ids"]
        pooled = [[1] * len(i) for i in ids]
    vectors = []
    for row, pool in zip(ids, pooled, strict=True):
        # one text at a time: no padding at all
        input_ids = torch.tensor([row])
        attention = torch.ones_like(input_ids)
        embeds = model.get_input_embeddings()(input_ids)
        mask = attention
        if bidirectional:
            for module in model.modules():
                if hasattr(module, "is_causal") and module is not model:
                    module.is_causal = False
            mask = create_bidirectional_mask(
                config=model.config,
                inputs_embeds=embeds,
                attention_mask=attention,
                allow_is_bidirectional_skip=False,
            )
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits[0]
        weights = torch.log1p(torch.relu(scale * logits + bias))
        vectors.append(weights[torch.tensor(pool).bool()].amax(dim=0))
    return torch.stack(vectors), model


def gradients(module):
    return {n: p.grad for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_same_vectors_and_gradients_as_transformers(
    tmp_path, tokenizer_folder, architecture, tied, bidirectional
):
    folder = make_model(tmp_path / "model", architecture, tied, tokenizer_folder)
    encoder = encoders(folder, bidirectional=bidirectional)
    assert encoder.dimension == len(load_tokenizer(str(folder)))
    value = encoder(records()).value
    expected, model = reference(folder, TEXTS, 16, bidirectional)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    assert (value > 0).any(dim=1).all()

    coefficients = torch.linspace(-1, 1, value.numel()).reshape(value.shape)
    (value * coefficients).sum().backward()
    (expected * coefficients).sum().backward()
    ours, theirs = gradients(encoder.encoder.model), gradients(model)
    assert set(ours) == set(theirs) and len(ours) > 10
    for name, grad in theirs.items():
        # float32 sums of terms of different orders: relative to the largest
        scale = float(grad.abs().max())
        torch.testing.assert_close(
            ours[name], grad, rtol=1e-4, atol=1e-5 * scale, msg=name
        )
    if tied:
        assert encoder.encoder.model.get_output_embeddings().weight is (
            encoder.encoder.model.get_input_embeddings().weight
        )


def test_bidirectional_attention_sees_the_following_tokens(tokenizer_folder):
    """A token's state changes with the tokens after it when bidirectional,
    never when causal (the first tokens of two texts that differ at the end)"""
    texts = ["lazo bomu vipube", "lazo bomu nina"]
    for bidirectional in (True, False):
        encoder = encoders(tokenizer_folder, bidirectional=bidirectional)
        _, inputs, _ = encoder._inputs(records(texts))
        with torch.no_grad():
            hidden = encoder._backbone(**inputs).last_hidden_state
        first = (hidden[0, :3] - hidden[1, :3]).abs().max()
        assert (first > 1e-4) == bidirectional, (bidirectional, first)


def test_echo_pools_the_second_copy(tokenizer_folder):
    encoder = encoders(tokenizer_folder, echo=True, bidirectional=False)
    tokenized, inputs, pooled = encoder._inputs(records())
    lengths = pooled.sum(dim=1)
    # [BOS] text text: the second copy pooled
    assert (inputs["attention_mask"].sum(dim=1) == 2 * lengths + 1).all()
    value = encoder(records()).value
    expected, _ = reference(tokenizer_folder, TEXTS, 16, False, echo=True)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    plain = encoders(tokenizer_folder, bidirectional=False)(records()).value
    assert not torch.allclose(value, plain)


def test_logit_scale(tokenizer_folder):
    """Lion-SP's hidden_size ** -1/4 before log(1 + ReLU)"""
    scale = 64**-0.25
    value = encoders(tokenizer_folder, bidirectional=True, logit_scale=scale)(
        records()
    ).value
    expected, _ = reference(tokenizer_folder, TEXTS, 16, True, scale=scale)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)


def test_logit_bias(tokenizer_folder):
    """A constant added to the scaled logits before log(1 + ReLU): values as
    transformers' logits give them, and fewer active entries than without"""
    scale, bias = 64**-0.25, -0.05
    value = encoders(
        tokenizer_folder, bidirectional=True, logit_scale=scale, logit_bias=bias
    )(records()).value
    expected, _ = reference(
        tokenizer_folder, TEXTS, 16, True, scale=scale, bias=bias
    )
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    unbiased = encoders(tokenizer_folder, bidirectional=True, logit_scale=scale)(
        records()
    ).value
    assert 0 < (value > 0).sum() < (unbiased > 0).sum()


def test_lora_trains_the_adapters_only_and_saves_them_as_peft(
    tmp_path, tokenizer_folder
):
    lora = LoRA.C(r=4, alpha=8.0, dropout=0.0, target_modules=["q_proj", "v_proj"])
    encoder = encoders(tokenizer_folder, bidirectional=True, lora=lora)
    plain = encoders(tokenizer_folder, bidirectional=True)
    # LoRA starts at 0: the same vectors as the model without it
    torch.testing.assert_close(encoder(records()).value, plain(records()).value)
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)

    # a few steps change the adapters (and the vectors)
    encoder.train()
    optimizer = torch.optim.SGD(
        [p for p in encoder.parameters() if p.requires_grad], 1.0
    )
    for _ in range(3):
        optimizer.zero_grad()
        encoder(records()).value.sum().backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        trained = encoder(records()).value
    assert not torch.allclose(trained, plain(records()).value)

    encoder.save_model(tmp_path / "saved")
    saved = tmp_path / "saved"
    names = {p.name for p in saved.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert "model.safetensors" not in names  # the frozen weights: the source's
    config = json.loads((saved / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8.0
    assert config["base_model_name_or_path"] == str(tokenizer_folder)
    from safetensors.torch import load_file

    keys = list(load_file(str(saved / "adapter_model.safetensors")))
    assert keys and all(k.startswith("base_model.model.model.layers.") for k in keys)
    assert read_settings(saved)["bidirectional"] is True

    # loaded in a new encoder: the same vectors
    document, _, _ = decoder_encoders(
        DecoderLocation.C(hf_id=str(tokenizer_folder)),
        name=str(tokenizer_folder),
        query_maxlen=8,
        document_maxlen=16,
        bidirectional=True,
        lora=lora,
    )
    loaded = document.instance()
    loaded.initialize()
    loaded.load_model(saved)
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(records()).value, trained)

    # ... and merged, in transformers (peft's loading of the adapter too)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = export_merged(saved, tmp_path / "merged")
    assert not (merged / "adapter_config.json").exists()
    plain_lm = AutoModelForCausalLM.from_pretrained(merged)
    peft_lm = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tokenizer_folder), str(saved)
    ).merge_and_unload()
    for (name, a), (_, b) in zip(
        plain_lm.state_dict().items(), peft_lm.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    as_transformers = encoders(merged, bidirectional=True)
    with torch.no_grad():
        torch.testing.assert_close(as_transformers(records()).value, trained)


def test_a_saved_model_without_lora_is_a_transformers_folder(
    tmp_path, tokenizer_folder
):
    encoder = encoders(tokenizer_folder, bidirectional=True)
    encoder.save_model(tmp_path / "saved")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    loaded = encoders(tmp_path / "saved", bidirectional=True)
    with torch.no_grad():
        torch.testing.assert_close(loaded(records()).value, encoder(records()).value)


def test_topk_keeps_k_weights(tokenizer_folder):
    from splade.encoders.topk import TopK

    encoder = encoders(
        tokenizer_folder,
        bidirectional=True,
        document_topk=TopK.C(k=5, training=True, inference=True),
    )
    with torch.no_grad():
        value = encoder(records()).value
    full = encoders(tokenizer_folder, bidirectional=True)(records()).value
    assert ((value > 0).sum(dim=1) == 5).all()
    top = full.topk(5, dim=1).values
    torch.testing.assert_close(value.topk(5, dim=1).values, top.detach())


SMOLLM2 = SHARED / "models" / "smollm2-135m"


@pytest.mark.slow
@pytest.mark.skipif(
    not SMOLLM2.is_dir(), reason="../shared/models/smollm2-135m is absent"
)
def test_logit_bias_makes_a_pretrained_decoder_sparse():
    """SmolLM2-135M's logits share a positive offset (13.9 on average): as it
    is, nearly every vocabulary entry is active in every text; with
    Lion-SP's scale and the bias of docs/llm.md, a few percent are"""
    pytest.importorskip("gguf")
    from splade.debug_data import DebugCollectionSpec, generate

    texts = [text for _, text in generate(DebugCollectionSpec()).documents[:8]]
    vocabulary = 49_152
    options = dict(bidirectional=True, logit_scale=576**-0.25)
    plain = encoders(SMOLLM2, **options)(records(texts)).value
    assert plain.shape[1] == vocabulary
    assert ((plain > 0).sum(1) > 0.9 * vocabulary).all()
    biased = encoders(SMOLLM2, logit_bias=-5.3, **options)(records(texts)).value
    active = (biased > 0).sum(1)
    # 454 to 3,606 of 49,152 (1,530 on average) on 2026-12-03
    assert ((active > 10) & (active < 0.1 * vocabulary)).all(), active
    assert active.float().mean() < 0.05 * vocabulary, active
