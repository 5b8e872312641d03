"""SPLADE-max written with other libraries than the package's: the
references that tests and benchmarks compare the package's encoders with,
and the way to load a trained model with sentence-transformers"""

from typing import Iterator, List

import torch

__all__ = ["load_sparse_encoder", "transformers_splade_max"]


def load_sparse_encoder(folder, maxlen: int, device: str = "cpu"):
    """sentence-transformers' ``SparseEncoder`` of the SPLADE-max model saved
    in ``folder`` (a Hugging Face masked language model folder, e.g. an
    encoder of a checkpoint): the fill-mask transformer, then
    ``SpladePooling`` with the maximum, texts truncated to ``maxlen`` tokens
    (sentence-transformers >= 6, which xpmir 1.5 requires)
    """
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    transformer = Transformer(
        str(folder), transformer_task="fill-mask", max_seq_length=maxlen
    )
    pooling = SpladePooling(pooling_strategy="max")
    return SparseEncoder(modules=[transformer, pooling], device=device)


def transformers_splade_max(
    folder, texts: List[str], maxlen: int, batch_size: int = 1
) -> Iterator[torch.Tensor]:
    """SPLADE-max vectors written directly with ``transformers``: for each
    text, the maximum over its (real) tokens of log(1 + ReLU(MLM logits)),
    texts truncated to ``maxlen`` tokens

    The definition, with none of the package's or xpmir's code: the reference
    that the tests and benchmarks compare the encoders with. Yields one
    tensor (texts x vocabulary) per batch of ``batch_size`` texts, in order
    (``batch_size=1``: no padding at all).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    mlm = AutoModelForMaskedLM.from_pretrained(folder).eval()
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=maxlen,
            return_tensors="pt",
        )
        with torch.no_grad():
            weights = torch.log1p(torch.relu(mlm(**tokens).logits))
        weights = weights * tokens["attention_mask"].unsqueeze(-1)
        yield weights.amax(dim=1)
