"""SPLADE-max over a decoder-only (causal) language model

Any Hugging Face ``AutoModelForCausalLM`` (Llama, Qwen2, Qwen3, Mistral...)
is the encoder: its body gives the tokens' states, its LM head (tied to the
input embeddings or not) is the vocabulary projection, and the
representation is SPLADE-max's, the maximum over the tokens of
``log(1 + ReLU(s * logits))`` (:class:`DecoderSpladeEncoder`, a
:class:`~splade.encoders.SpladeMaxEncoder`: the same grouping by length and
the same memory-light head). The options are those of the papers:

- **bidirectional attention**: the causal mask is replaced by a padding
  mask, every token sees the whole text (Lion-SP, Zeng et al., SIGIR 2025,
  arXiv 2502.15526; LACONIC, Xu et al., 2026, arXiv 2601.01684;
  SPLADE-Code; CSPLADE-bi, Xu et al., arXiv 2504.10816); a causal model
  is usually adapted to it first by masked next-token prediction
  (:mod:`splade.mntp`);
- **echo**: the text is given twice and only the second copy is pooled, so
  that with causal attention its tokens have seen the whole text (Echo
  embeddings, Springer et al., 2024, arXiv 2402.15449;
  Mistral-SPLADE, Doshi et al., 2024, arXiv 2408.11119; CSPLADE-echo);
- **logit scale** ``s``: Lion-SP multiplies the logits by
  ``hidden_size ** -0.25`` (``DecoderOnlyBiSparse.encode``,
  HansiZeng/scaling-retriever); and a constant **logit bias** added after
  it, for a pretrained model whose logits share a large positive offset
  (every entry would be active in every text);
- **LoRA** through ``peft`` (r, alpha, dropout, target modules), gradient
  checkpointing, and the weights' dtype (bfloat16 where the GPU has it).

Models are loaded from a hub id or a folder (:func:`load_causal_lm`): a
Hugging Face folder, a folder with a GGUF file (dequantized by
``transformers`` with the ``gguf`` package), or a LoRA adapter folder in
``peft``'s layout (``adapter_config.json`` naming the base model, and
``adapter_model.safetensors``), merged into its base: the layout of the
published Lion-SP checkpoints (``hzeng/Lion-SP-1B-llama3-marco-mntp``).

A trained encoder is saved (:meth:`HFDecoderModel.save`) as its LoRA
adapter in ``peft``'s layout (its base being the model it started from), or
as a whole Hugging Face folder without LoRA; :func:`export_merged` writes a
plain folder with the LoRA merged, which ``transformers`` loads
(``AutoModelForCausalLM``; the bidirectional attention is this package's,
see ``splade_decoder.json``).
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from experimaestro import Config, LightweightTask, Meta, Param, field
from xpmir.text.huggingface.base import HFConfig, HFMaskedLanguageModel
from xpmir.text.huggingface.tokenizers import HFTokenizer
from xpmir.text.tokenizers import TokenizedTexts

from splade.encoders.splade_max import SpladeMaxEncoder

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "DecoderBackbone",
    "DecoderInit",
    "DecoderLocation",
    "DecoderSpladeEncoder",
    "DecoderTokenizer",
    "HFDecoderModel",
    "LoRA",
    "decoder_encoders",
    "export_merged",
    "load_causal_lm",
    "read_settings",
]

logger = logging.getLogger(__name__)

#: The linear layers that Lion-SP and LACONIC adapt with LoRA (attention
#: and MLP projections of Llama, Qwen2/3 and Mistral)
DEFAULT_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

#: The file that describes a saved encoder (source, attention, options)
SETTINGS = "splade_decoder.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: peft's prefix of the adapter weights' names (a ``PeftModel``'s)
PEFT_PREFIX = "base_model.model."


# --- Loading


def _is_folder(location: str) -> bool:
    return Path(location).expanduser().is_dir()


def _hub_file(location: str, name: str) -> Optional[Path]:
    """A file of a folder or of a hub model (None if it has none)"""
    if _is_folder(location):
        path = Path(location).expanduser() / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(location, name))
    except Exception:
        return None


def gguf_file(location: str) -> Optional[str]:
    """The name of the GGUF file of a folder that has no other weights
    (``transformers`` loads it with ``gguf_file=``), or None"""
    if not _is_folder(location):
        return None
    folder = Path(location).expanduser()
    if any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin")):
        return None
    files = sorted(folder.glob("*.gguf"))
    if len(files) > 1:
        raise ValueError(f"{folder}: several GGUF files, {[f.name for f in files]}")
    return files[0].name if files else None


def adapter_base(location: str) -> Optional[str]:
    """The base model named by a LoRA adapter (``peft`` layout), or None if
    ``location`` is not an adapter"""
    path = _hub_file(location, ADAPTER_CONFIG)
    if path is None:
        return None
    return json.loads(path.read_text())["base_model_name_or_path"]


def resolve_dtype(dtype: str, lora: bool = False) -> torch.dtype:
    """``float32``, ``bfloat16``, or ``auto``: bfloat16 weights where a CUDA
    device supports it and LoRA leaves them frozen, float32 otherwise"""
    if dtype == "auto":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 and lora else torch.float32
    return getattr(torch, dtype)


def load_causal_lm(
    location: str, dtype: torch.dtype = torch.float32, base: Optional[str] = None
):
    """The causal LM at ``location`` (hub id or folder): a Hugging Face
    model, a folder holding a GGUF file (dequantized to ``dtype``), or a
    LoRA adapter, merged into its base model (``base`` if given, otherwise
    the adapter's ``base_model_name_or_path``)"""
    from transformers import AutoModelForCausalLM

    adapter = adapter_base(location)
    if adapter is not None:
        from peft import PeftModel

        base_model = load_causal_lm(base or adapter, dtype)
        logger.info("Merging the LoRA adapter %s into %s", location, base or adapter)
        model = PeftModel.from_pretrained(base_model, location)
        return model.merge_and_unload()

    kwargs = {}
    gguf = gguf_file(location)
    if gguf is not None:
        kwargs["gguf_file"] = gguf
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    if gguf is not None:
        # A model dequantized from a GGUF file is an ordinary one (it refuses
        # save_pretrained while it keeps its quantization settings)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model


def load_tokenizer(location: str, base: Optional[str] = None):
    """The tokenizer of a model (of its base, for an adapter without one),
    padding on the right with a padding token (the end-of-text token when
    the model has none, as Lion-SP and LACONIC do)"""
    from transformers import AutoTokenizer

    source = location
    if adapter_base(location) is not None:
        has_tokenizer = _hub_file(location, "tokenizer_config.json") is not None
        source = location if has_tokenizer else (base or adapter_base(location))
    kwargs = {}
    gguf = gguf_file(source)
    if gguf is not None and not (Path(source) / "tokenizer.json").is_file():
        kwargs["gguf_file"] = gguf
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "right"
    return tokenizer


def set_bidirectional(model, bidirectional: bool):
    """Marks the attention layers as causal or not (flash attention reads
    it; the other implementations get their mask from
    :class:`DecoderBackbone`)"""
    for module in model.modules():
        if hasattr(module, "is_causal") and module is not model:
            module.is_causal = not bidirectional


class DecoderBackbone(nn.Module):
    """The body of a causal LM (without its LM head), giving the last
    hidden states; with ``bidirectional``, every token attends to every
    (non-padding) token"""

    def __init__(self, lm, bidirectional: bool):
        super().__init__()
        self.body = lm.get_decoder()
        self.bidirectional = bidirectional

    def forward(self, input_ids, attention_mask, **_):
        from transformers.masking_utils import create_bidirectional_mask

        embeds = self.body.get_input_embeddings()(input_ids)
        mask = attention_mask
        if self.bidirectional:
            # A mask for the attention implementation (4D, or 2D for flash
            # attention): the model then takes it as it is
            mask = create_bidirectional_mask(
                config=self.body.config,
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                allow_is_bidirectional_skip=False,
            )
        return self.body(inputs_embeds=embeds, attention_mask=mask, use_cache=False)


# --- Configuration objects


class DecoderLocation(HFConfig):
    """A causal LM given by a hub id or a folder (see :func:`load_causal_lm`)"""

    hf_id: Param[str]
    """Hugging Face hub id or folder (a Hugging Face model, a GGUF file, or a
    LoRA adapter)"""

    def location(self) -> str:
        return self.hf_id


class LoRA(Config):
    """LoRA (Hu et al., 2021, arXiv 2106.09685) on linear layers, through
    ``peft``: the base weights are frozen"""

    r: Param[int] = field(default=16)
    """Rank of the update"""

    alpha: Param[float] = field(default=32.0)
    """Scaling numerator: the update is multiplied by alpha / r"""

    dropout: Param[float] = field(default=0.1)
    """Dropout on the LoRA branch's input"""

    target_modules: Param[List[str]] = field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES)
    )
    """Names of the adapted linear layers"""

    def peft_config(self, base: Optional[str] = None):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
            base_model_name_or_path=base,
        )


class HFDecoderModel(HFMaskedLanguageModel):
    """A causal language model as SPLADE's encoder: its body and LM head
    (:meth:`decompose`), with bidirectional attention and LoRA if asked

    The model's structure is made on the meta device (no memory); its
    weights come from :meth:`load_pretrained` (the init task
    :class:`DecoderInit`) or :meth:`load_checkpoint` (a saved encoder).
    """

    # config (HFModel's): where the model is (:class:`DecoderLocation`, or
    # the output of the MNTP adaptation, :class:`splade.mntp.MNTPModel`)

    bidirectional: Param[bool] = field(default=False, ignore_default=True)
    """Every token attends to every token (the causal mask removed)"""

    lora: Param[Optional[LoRA]] = field(default=None, ignore_default=True)
    """LoRA adapters (unset: every weight is trained)"""

    adapter_base: Param[Optional[str]] = field(default=None, ignore_default=True)
    """For an adapter folder or hub id: its base model, instead of the one
    its ``adapter_config.json`` names (e.g. a local copy)"""

    gradient_checkpointing: Meta[bool] = field(default=False, ignore_default=True)
    """Recompute the layers' activations in the backward pass (less memory,
    about a third more time)"""

    dtype: Meta[str] = field(default="auto", ignore_default=True)
    """Weights' dtype: ``float32``, ``bfloat16`` or ``auto`` (bfloat16 on a
    CUDA device that has it when LoRA freezes the weights, float32
    otherwise)"""

    @property
    def automodel(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def location(self) -> str:
        return self.config.location()

    def __initialize__(self):
        from transformers import AutoConfig

        location = self.location()
        base = adapter_base(location)
        config_source = (self.adapter_base or base) if base else location
        kwargs = {}
        gguf = gguf_file(config_source)
        if gguf is not None and not (Path(config_source) / "config.json").is_file():
            kwargs["gguf_file"] = gguf
        self.hf_config = AutoConfig.from_pretrained(config_source, **kwargs)
        # The structure only (the weights are loaded by load_pretrained or
        # load_checkpoint)
        with torch.device("meta"):
            self._prepare(self.automodel.from_config(self.hf_config))

    def _prepare(self, model):
        """Bidirectional attention, LoRA, gradient checkpointing"""
        set_bidirectional(model, self.bidirectional)
        if self.lora is not None:
            from peft import inject_adapter_in_model

            inject_adapter_in_model(self.lora.peft_config(), model)
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False
        self.model = model

    def load_pretrained(self):
        """The model's pretrained weights (the LoRA adapters start at 0)"""
        dtype = resolve_dtype(self.dtype, self.lora is not None)
        model = load_causal_lm(self.location(), dtype, self.adapter_base)
        self._prepare(model)
        if self.lora is not None:
            # The adapters in float32 (the frozen weights may be bfloat16)
            for name, parameter in model.named_parameters():
                if "lora_" in name:
                    parameter.data = parameter.data.float()
        self._initialized = True

    def decompose(self) -> Tuple[nn.Module, nn.Module, nn.Linear]:
        """(body, transform, LM head): decoders have no transform"""
        decoder = self.model.get_output_embeddings()
        return DecoderBackbone(self.model, self.bidirectional), nn.Identity(), decoder

    def settings(self) -> Dict:
        """What a saved encoder records of its model"""
        return {
            "source": self.location(),
            "adapter_base": self.adapter_base,
            "bidirectional": self.bidirectional,
            "lora": None
            if self.lora is None
            else {
                "r": self.lora.r,
                "alpha": self.lora.alpha,
                "dropout": self.lora.dropout,
                "target_modules": list(self.lora.target_modules),
            },
        }

    def save(self, path: Path):
        """The LoRA adapter in ``peft``'s layout, or the whole model"""
        path.mkdir(parents=True, exist_ok=True)
        if self.lora is None:
            self.model.save_pretrained(path)
            return
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        state = get_peft_model_state_dict(self.model)
        state = {PEFT_PREFIX + k: v.detach().contiguous() for k, v in state.items()}
        save_file(state, str(path / ADAPTER_WEIGHTS))
        config = self.lora.peft_config(base=self.location())
        config.save_pretrained(str(path))
        self.model.config.save_pretrained(path)

    def _loaded(self) -> bool:
        """Whether the model has weights (not only its structure)"""
        model = getattr(self, "model", None)
        return model is not None and not next(model.parameters()).is_meta

    def load_checkpoint(self, path: Path):
        """Loads what :meth:`save` wrote: into the model when it has weights
        (a training that resumes: the optimizer and Fabric hold its
        parameters), or as a new model after :meth:`__initialize__`"""
        path = Path(path)
        dtype = resolve_dtype(self.dtype, self.lora is not None)
        if (path / ADAPTER_WEIGHTS).is_file():
            if self.lora is None:
                raise ValueError(f"{path}: a LoRA adapter, for a model without LoRA")
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            if not self._loaded():
                self.load_pretrained()
            state = load_file(str(path / ADAPTER_WEIGHTS))
            state = {k.removeprefix(PEFT_PREFIX): v for k, v in state.items()}
            result = set_peft_model_state_dict(self.model, state)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise ValueError(f"{path}: unexpected adapter weights {unexpected}")
        elif self._loaded():
            saved = load_causal_lm(str(path), dtype)
            self.model.load_state_dict(saved.state_dict(), strict=False)
        else:
            self._prepare(load_causal_lm(str(path), dtype))
        self._initialized = True


class DecoderTokenizer(HFTokenizer):
    """The tokenizer of a decoder (:func:`load_tokenizer`: a padding token
    if the model has none, padding on the right), read where the model is"""

    source: Param[HFConfig]
    """Where the model is (the tokenizer is read from there)"""

    adapter_base: Param[Optional[str]] = field(default=None, ignore_default=True)
    """The adapter's base model (see :class:`HFDecoderModel`)"""

    def __initialize__(self):
        self.tokenizer = load_tokenizer(self.source.location(), self.adapter_base)
        if self.max_length:
            self.tokenizer.model_max_length = self.max_length
        self.cls = self.tokenizer.cls_token
        self.cls_id = self.tokenizer.cls_token_id
        self.sep_id = self.tokenizer.sep_token_id


class _Head:
    """The vocabulary head of a decoder: no transform, the LM head"""

    transform = staticmethod(lambda hidden: hidden)

    def __init__(self, decoder: nn.Linear):
        self.decoder = decoder


class DecoderSpladeEncoder(SpladeMaxEncoder):
    """SPLADE-max over a causal language model (see the module)"""

    # encoder (SpladeTextEncoder's): the causal language model, an
    # HFDecoderModel

    echo: Param[bool] = field(default=False, ignore_default=True)
    """The text is given twice, only the second copy is pooled (Echo
    embeddings)"""

    logit_scale: Param[float] = field(default=1.0, ignore_default=True)
    """Factor of the logits before log(1 + ReLU) (Lion-SP: hidden_size **
    -0.25)"""

    logit_bias: Param[float] = field(default=0.0, ignore_default=True)
    """Added to the scaled logits before log(1 + ReLU) (a pretrained
    decoder's logits may share a large positive offset)"""

    def __initialize__(self):
        # Not SpladeTextEncoder's: the body and the head are not kept as
        # submodules, but taken from the model at each forward (a loaded
        # checkpoint replaces the model, of the encoders that share it)
        self.encoder.initialize()
        self.tokenizer.initialize()
        self._hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        self._prefix = list(self._hf_tokenizer("")["input_ids"])
        self._double_log = self._activation() == "log1p_relu"

    @property
    def _backbone(self) -> nn.Module:
        return DecoderBackbone(self.encoder.model, self.encoder.bidirectional)

    @property
    def _head(self):
        return _Head(self.encoder.model.get_output_embeddings())

    def _fused_head(self) -> bool:
        return False

    def _logit_scale(self) -> float:
        return self.logit_scale

    def _logit_bias(self) -> float:
        return self.logit_bias

    def _inputs(self, texts):
        if not self._initialized:
            self.initialize()
        converter = self.tokenizer.converter
        strings = [converter(text) for text in texts]
        tokenizer = self._hf_tokenizer
        maxlen = self.maxlen or tokenizer.model_max_length
        if not self.echo:
            encoded = tokenizer(
                strings, truncation=True, max_length=maxlen, add_special_tokens=True
            )["input_ids"]
            pooled = [[1] * len(ids) for ids in encoded]
        else:
            contents = tokenizer(
                strings,
                truncation=True,
                max_length=max(1, maxlen - len(self._prefix)),
                add_special_tokens=False,
            )["input_ids"]
            encoded = [self._prefix + ids + ids for ids in contents]
            pooled = [
                [0] * (len(self._prefix) + len(ids)) + [1] * len(ids)
                for ids in contents
            ]
        width = max(len(ids) for ids in encoded)
        count = len(encoded)
        ids = torch.full((count, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(count, width, dtype=torch.long)
        pool = torch.zeros(count, width, dtype=torch.long)
        for row, (tokens, pooled_row) in enumerate(zip(encoded, pooled, strict=True)):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
            pool[row, : len(tokens)] = torch.tensor(pooled_row)
        lengths = mask.sum(dim=1)
        tokenized = TokenizedTexts(None, ids, lengths, mask, None)
        return tokenized, {"input_ids": ids, "attention_mask": mask}, pool

    @property
    def dimension(self):
        return self.encoder.model.config.vocab_size

    def settings(self) -> Dict:
        """What :meth:`save_model` records (``splade_decoder.json``)"""
        return {
            "format": "splade-decoder",
            "version": 1,
            **self.encoder.settings(),
            "echo": self.echo,
            "logit_scale": self.logit_scale,
            "logit_bias": self.logit_bias,
            "pooling": "max",
            "maxlen": self.maxlen,
        }

    def save_model(self, path: Path):
        if not self._initialized:
            self.initialize()
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save(path)
        self._hf_tokenizer.save_pretrained(path)
        (path / SETTINGS).write_text(json.dumps(self.settings(), indent=2) + "\n")

    def load_model(self, path: Path):
        self.encoder.load_checkpoint(Path(path))


class DecoderInit(LightweightTask):
    """Loads the pretrained weights of a :class:`HFDecoderModel` (before
    training, or to evaluate a published model as it is)"""

    model: Param[HFDecoderModel]
    """The model"""

    def execute(self):
        self.model.load_pretrained()


def read_settings(folder) -> Dict:
    """The ``splade_decoder.json`` of a saved encoder"""
    return json.loads((Path(folder) / SETTINGS).read_text())


def export_merged(folder, output, dtype: torch.dtype = torch.float32):
    """Writes, from a saved :class:`DecoderSpladeEncoder` (``folder``), a
    plain Hugging Face causal LM folder with its LoRA merged (loadable with
    ``AutoModelForCausalLM.from_pretrained``), its tokenizer, and its
    ``splade_decoder.json`` (attention, echo, logit scale and bias: what
    ``transformers`` does not know)"""
    folder, output = Path(folder), Path(output)
    settings = read_settings(folder)
    if (folder / ADAPTER_WEIGHTS).is_file():
        from peft import PeftModel

        base = load_causal_lm(settings["source"], dtype, settings.get("adapter_base"))
        model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    else:
        model = load_causal_lm(str(folder), dtype)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    load_tokenizer(str(folder)).save_pretrained(output)
    merged = {**settings, "lora": None, "source": None, "merged_from": str(folder)}
    (output / SETTINGS).write_text(json.dumps(merged, indent=2) + "\n")
    return output


def decoder_encoders(
    source: HFConfig,
    *,
    name: str,
    query_maxlen: int,
    document_maxlen: int,
    bidirectional: bool = False,
    echo: bool = False,
    logit_scale: float = 1.0,
    logit_bias: float = 0.0,
    lora: Optional[LoRA] = None,
    adapter_base: Optional[str] = None,
    gradient_checkpointing: bool = False,
    dtype: str = "auto",
    head: str = "auto",
    query_topk=None,
    document_topk=None,
):
    """The (document, query) encoders of a causal LM (sharing the model and
    tokenizer), and the task that loads its pretrained weights

    :param source: where the model is (:class:`DecoderLocation`, or the MNTP
        adaptation's output)
    :param name: a name of the source for the tokenizer's ``model_id`` (the
        hub id or folder, or the base's for an adapted model)
    """
    from xpmir.neural.splade import MaxAggregation
    from xpmir.text.adapters import TopicTextConverter
    from xpmir.text.huggingface.tokenizers import HFTokenizerAdapter

    model = HFDecoderModel.C(
        config=source,
        bidirectional=bidirectional,
        lora=lora,
        adapter_base=adapter_base,
        gradient_checkpointing=gradient_checkpointing,
        dtype=dtype,
    )
    tokenizer = HFTokenizerAdapter.C(
        tokenizer=DecoderTokenizer.C(
            model_id=name,
            source=source,
            adapter_base=adapter_base,
            max_length=max(query_maxlen, document_maxlen),
        ),
        converter=TopicTextConverter.C(),
    )
    common = dict(
        encoder=model,
        tokenizer=tokenizer,
        aggregation=MaxAggregation.C(),
        echo=echo,
        logit_scale=logit_scale,
        logit_bias=logit_bias,
        head=head,
    )
    document = DecoderSpladeEncoder.C(
        maxlen=document_maxlen, topk=document_topk, **common
    )
    query = DecoderSpladeEncoder.C(maxlen=query_maxlen, topk=query_topk, **common)
    return document, query, [DecoderInit.C(model=model)]
