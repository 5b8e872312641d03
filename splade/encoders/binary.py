"""SPLADE-doc's query encoder: the binary bag of the query's tokens"""

from pathlib import Path
from typing import List, Optional

import torch
from experimaestro import Param, field
from xpm_torch.module import initialized
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import InputType, TextEncoderBase, TextsRepresentationOutput
from xpmir.text.huggingface import HFTokenizerBase

__all__ = ["BinaryQueryEncoder"]


class BinaryQueryEncoder(TextEncoderBase[InputType, TextsRepresentationOutput]):
    """SPLADE-doc's query encoder: the binary bag of the query's tokens

    xpmir 1.5.0's ``OneHotHuggingFaceEncoder`` (used by ``spladeV2_doc``)
    (xpmir/text/huggingface/encoders.py:112) still takes strings and returns a
    bare tensor, while the scorers and the ``SparseRetriever`` of the same
    release give records and expect a ``TextsRepresentationOutput``:
    SPLADE-doc can be neither trained nor evaluated with it. This encoder
    uses the document encoder's tokenizer.
    """

    __xpmid__ = "splade.workarounds.binaryqueryencoder"

    tokenizer: Param[HFTokenizerBase[InputType]]
    """The tokenizer (shared with the document encoder)"""

    maxlen: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Maximum number of tokens of a query"""

    def __initialize__(self):
        super().__initialize__()
        self.tokenizer.initialize()
        hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        self._special = sorted(set(hf_tokenizer.all_special_ids))
        self._dimension = len(hf_tokenizer)
        # No parameter is learned, but the module must know its device
        self.register_buffer("_device", torch.zeros(0), persistent=False)

    @property
    def dimension(self):
        return self._dimension

    def static(self):
        return True

    @initialized
    def forward(self, texts: List[InputType]) -> TextsRepresentationOutput:
        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        value = torch.zeros(len(texts), self.dimension, device=self._device.device)
        ids = tokenized.ids.to(value.device)
        value.scatter_(1, ids, 1.0)
        value[:, self._special] = 0
        return TextsRepresentationOutput(value, tokenized)

    def save_model(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)

    def load_model(self, path: Path):
        pass
