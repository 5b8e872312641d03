"""The published LLM sparse checkpoints, loaded by the package: generated
small models saved in the layouts of Lion-SP (a LoRA adapter in peft's
layout over a Llama base, HansiZeng/scaling-retriever) and LACONIC (a whole
Llama folder saved from LlamaBiForMNTP, zhichaoxu-shufe/laconic-sparse-
retrieval), whose vectors equal those of the authors' encoding code
(rewritten here from it)"""

import json

import pytest
import torch
from datamaestro_ir.data import SimpleTextItem

from splade import pretrained
from splade.configuration import Backbone, Decoder, Model
from splade.models import problems, splade_model
from splade.tiny_decoder import TinyDecoderSpec, make_tiny_decoder

TEXTS = [
    "what about mopege nina diba lazo theory",
    "lazo bomu",
    "analysis data lazo vipube nina bomu",
]
SPEC = TinyDecoderSpec(hidden_size=32, heads=4, kv_heads=2, intermediate_size=64)
HIDDEN = SPEC.hidden_size
TARGETS = ["q_proj", "v_proj", "o_proj", "k_proj", "down_proj", "up_proj", "gate_proj"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, collection):
    """A small Llama (the stand-in of meta-llama/Llama-3.2-1B)"""
    folder = tmp_path_factory.mktemp("base")
    texts = [text for _, text in collection.documents[:300]] + TEXTS
    make_tiny_decoder(texts, folder, SPEC)
    return folder


@pytest.fixture(scope="module")
def lion_sp(base, tmp_path_factory):
    """A LoRA adapter saved as Lion-SP's training saves it: peft's
    ``get_peft_model`` over the (bidirectional) causal LM, r 16, alpha 32,
    every projection; its config names the hub base; the tokenizer pads on
    the left with the end-of-text token"""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("lion-sp")
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        base_model_name_or_path="meta-llama/Llama-3.2-1B",
        task_type=None,
        r=16,
        lora_alpha=32,
        lora_dropout=0.1,
        target_modules=TARGETS,
    )
    model = get_peft_model(model, config)
    torch.manual_seed(3)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    model.save_pretrained(folder)
    adapter = json.loads((folder / "adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "meta-llama/Llama-3.2-1B"
    adapter["auto_mapping"] = {
        "base_model_class": "LlamaBiForMNTP",
        "parent_library": "scaling_retriever.modeling.bidirectional_llama",
    }
    (folder / "adapter_config.json").write_text(json.dumps(adapter))
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def laconic(base, tmp_path_factory):
    """A whole model saved by LlamaBiForMNTP.save_pretrained (LACONIC's
    merged checkpoints): a Llama folder whose architecture is
    LlamaBiForMNTP"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("laconic")
    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    model.config.architectures = ["LlamaBiForMNTP"]
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def authors_vectors(model, tokenizer, texts, maxlen, scale):
    """The authors' SPLADE-max: the logits of the bidirectional model (every
    token sees every non-padding token), times ``scale``, maximum over
    the real tokens (padding at -1e6), then log(1 + ReLU)"""
    from transformers.masking_utils import create_bidirectional_mask

    for module in model.modules():
        if hasattr(module, "is_causal") and module is not model:
            module.is_causal = False
    tokens = tokenizer(
        texts,
        max_length=maxlen,
        truncation=True,
        padding="longest",
        return_tensors="pt",
    )
    embeds = model.get_input_embeddings()(tokens["input_ids"])
    mask = create_bidirectional_mask(
        config=model.config,
        inputs_embeds=embeds,
        attention_mask=tokens["attention_mask"],
        allow_is_bidirectional_skip=False,
    )
    with torch.no_grad():
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits * scale
        padding = (1 - tokens["attention_mask"].unsqueeze(-1)) * -1e6
        return torch.log(torch.relu(torch.max(logits + padding, dim=1)[0]) + 1)


def package_encoders(location, **decoder):
    model = Model(
        base_hf_id=str(location),
        backbone=Backbone.DECODER,
        decoder=Decoder(bidirectional=True, **decoder),
        query_maxlen=64,
        document_maxlen=192,
    )
    assert problems(model, downloads=True) == []
    scorer, _, init_tasks = splade_model(model)
    assert len(init_tasks) == 1
    scorer = scorer.instance()
    scorer.encoder.encoder.load_pretrained()  # what the init task does
    scorer.eval()
    return scorer.encoder, scorer.query_encoder


def records(texts):
    return [{"text_item": SimpleTextItem(text)} for text in texts]


def test_lion_sp_adapter_layout(base, lion_sp):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert pretrained.problem(str(lion_sp)) is None
    scale = HIDDEN**-0.25
    document, query = package_encoders(
        lion_sp, logit_scale=scale, adapter_base=str(base)
    )
    with torch.no_grad():
        ours = document(records(TEXTS)).value
        ours_query = query(records(TEXTS)).value

    # the authors' loading: PeftModel over the base, merged; their
    # tokenizer pads on the left
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), str(lion_sp)
    ).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(lion_sp)
    tokenizer.padding_side = "left"  # (their scripts set it)
    expected = authors_vectors(model, tokenizer, TEXTS, 192, scale)
    # (left or right padding: the same up to float rounding, RoPE being
    # relative)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_query, expected, rtol=1e-4, atol=1e-5)
    # the adapter changes the vectors (it was loaded)
    plain = authors_vectors(
        AutoModelForCausalLM.from_pretrained(base), tokenizer, TEXTS, 192, scale
    )
    assert (plain - expected).abs().max() > 1e-3


def test_laconic_merged_layout(laconic):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    document, _ = package_encoders(laconic)
    with torch.no_grad():
        ours = document(records(TEXTS)).value
    tokenizer = AutoTokenizer.from_pretrained(laconic)
    tokenizer.pad_token = tokenizer.eos_token
    expected = authors_vectors(
        AutoModelForCausalLM.from_pretrained(laconic), tokenizer, TEXTS, 192, 1.0
    )
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_an_adapter_without_its_base_is_a_clear_problem(lion_sp, tmp_path):
    """The base named by the adapter is a hub id: offline, the error names the
    key to set"""
    from splade.models import adapter_problem

    problem = adapter_problem(str(lion_sp), None)
    assert problem and "model.decoder.adapter_base" in problem
    assert "meta-llama/Llama-3.2-1B" in problem
    assert adapter_problem(str(lion_sp), str(tmp_path)) is not None
