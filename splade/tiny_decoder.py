"""The embedded decoder: a small Llama-architecture causal LM made offline

As :mod:`splade.tiny_model` makes a small BERT, this makes a randomly
initialised ``LlamaForCausalLM`` (tied input and output embeddings, as
Llama-3.2-1B) whose tokenizer has the debug collection's WordPiece
vocabulary (:func:`splade.tiny_model.wordpiece_vocabulary`), with a
beginning-of-text token (``[CLS]``) added in front of each text, as Llama's
``<|begin_of_text|>``, an end-of-text token that also pads (``[SEP]``), and
a mask token for the MNTP adaptation (``[MASK]``). It is saved with
``save_pretrained``: it is used as any Hugging Face causal LM folder
(``model.base_hf_id: splade.debug.llama``, ``model.backbone: decoder``).
"""

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class TinyDecoderSpec:
    """Architecture of the generated causal language model"""

    vocab_size: int = 1024
    """Maximum size of the vocabulary (special tokens included)"""

    hidden_size: int = 64
    """Hidden size"""

    layers: int = 2
    """Number of decoder layers"""

    heads: int = 4
    """Number of attention heads"""

    kv_heads: int = 2
    """Number of key/value heads (grouped-query attention, as Llama 3)"""

    intermediate_size: int = 256
    """Size of the MLP (SwiGLU) layers"""

    max_length: int = 256
    """Maximum number of tokens (echo doubles the texts)"""

    seed: int = 0
    """Seed of the random initialisation"""

    version: int = 1
    """Bumped whenever the model or tokenizer construction changes"""


def make_tiny_decoder(
    texts: Iterable[str],
    folder: Path,
    spec: TinyDecoderSpec = TinyDecoderSpec(),
    vocab_size: int = 0,
):
    """Makes the tokenizer of ``texts``, a random Llama causal LM, and saves
    both in ``folder`` (a standard Hugging Face folder)

    :param vocab_size: the model's vocabulary size, if larger than the
        tokenizer's (the extra output dimensions are never input tokens: a
        model of Qwen's 151,936 entries for tests of large term ids)
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from splade.tiny_model import wordpiece_vocabulary

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word
        for text in texts
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    tokenizer = Tokenizer(
        models.WordPiece(
            vocab=wordpiece_vocabulary(words, spec.vocab_size), unk_token="[UNK]"
        )
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    bos = tokenizer.token_to_id("[CLS]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B:1", special_tokens=[("[CLS]", bos)]
    )
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="[CLS]",
        eos_token="[SEP]",
        unk_token="[UNK]",
        pad_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=spec.max_length,
    )

    config = LlamaConfig(
        vocab_size=max(vocab_size, tokenizer.get_vocab_size()),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_length,
        bos_token_id=bos,
        eos_token_id=tokenizer.token_to_id("[SEP]"),
        pad_token_id=tokenizer.token_to_id("[SEP]"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    (folder / "tiny_decoder_spec.json").write_text(json.dumps(asdict(spec), indent=2))
