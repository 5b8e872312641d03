"""The embedded model: a small BERT masked LM made offline

The model is randomly initialised from a :class:`transformers.BertConfig`
and its WordPiece tokenizer is trained with the ``tokenizers`` library on the
texts it will see. It is saved with ``save_pretrained``, so that it is used
exactly like ``distilbert-base-uncased`` is: through a local Hugging Face
folder given as ``base_hf_id``.
"""

from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Iterable
import json


@dataclass(frozen=True)
class TinyMLMSpec:
    """Architecture of the generated masked language model"""

    vocab_size: int = 1024
    """Size of the WordPiece vocabulary (special tokens included)"""

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


def make_tiny_mlm(texts: Iterable[str], folder: Path, spec: TinyMLMSpec = TinyMLMSpec()):
    """Trains a WordPiece tokenizer on ``texts``, creates a random BERT MLM
    and saves both in ``folder`` (a standard Hugging Face folder)"""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=spec.vocab_size, special_tokens=specials, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
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
