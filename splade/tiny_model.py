"""The embedded model: a small BERT masked LM made offline

The model is randomly initialised from a :class:`transformers.BertConfig`
and its WordPiece tokenizer (``tokenizers`` library) has a vocabulary made
from the texts it will see. It is saved with ``save_pretrained``, so that it is used
exactly like ``distilbert-base-uncased`` is: through a local Hugging Face
folder given as ``base_hf_id``.
"""

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable


@dataclass(frozen=True)
class TinyMLMSpec:
    """Architecture of the generated masked language model"""

    vocab_size: int = 1024
    """Maximum size of the WordPiece vocabulary (special tokens included)"""

    hidden_size: int = 64
    """Hidden size of the transformer"""

    layers: int = 2
    """Number of transformer layers"""

    heads: int = 2
    """Number of attention heads"""

    intermediate_size: int = 256
    """Size of the feed-forward layers"""

    max_length: int = 64
    """Maximum number of tokens (position embeddings)"""

    dropout: float = 0.0
    """Dropout probability (hidden and attention); a model this small
    learns faster without it"""

    seed: int = 0
    """Seed of the random initialisation"""

    version: int = 2
    """Bumped whenever the model or tokenizer construction changes"""


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocabulary(words: Counter, size: int) -> Dict[str, int]:
    """A WordPiece vocabulary: special tokens, every character (alone and as
    a continuation ``##c``), the most frequent words, and, as in BERT's
    vocabulary, ``[unused<k>]`` tokens up to ``size`` (SPLADE may use
    their output dimensions)

    Built here rather than with ``tokenizers``' WordPieceTrainer, whose
    result changes from one run to the next (ties between merges), which
    would change the model made from the same texts and seed.
    """
    chars = sorted({c for word in words for c in word})
    vocabulary = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    known = set(vocabulary)
    by_frequency = sorted(words.items(), key=lambda item: (-item[1], item[0]))
    for word, _ in by_frequency:
        if len(vocabulary) >= size:
            break
        if word not in known:
            vocabulary.append(word)
            known.add(word)
    vocabulary += [f"[unused{k}]" for k in range(size - len(vocabulary))]
    return {token: ix for ix, token in enumerate(vocabulary)}


def make_tiny_mlm(
    texts: Iterable[str], folder: Path, spec: TinyMLMSpec = TinyMLMSpec()
):
    """Trains a WordPiece tokenizer on ``texts``, creates a random BERT MLM
    and saves both in ``folder`` (a standard Hugging Face folder)"""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

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
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )

    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=spec.max_length,
    )

    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_length,
        pad_token_id=tokenizer.token_to_id("[PAD]"),
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
    )
    torch.manual_seed(spec.seed)
    model = BertForMaskedLM(config)

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    (folder / "tiny_mlm_spec.json").write_text(json.dumps(asdict(spec), indent=2))
