"""The SPLADE encoders: texts to sparse vectors over the vocabulary

- :mod:`.splade_max`: SPLADE-max over a masked language model, faster than
  xpmir's (padding skipped, maximum taken before log(1 + ReLU));
- :mod:`.binary`: SPLADE-doc's query side (the binary bag of the query's
  tokens);
- :mod:`.idf`: the inference-free query side of OpenSearch's models (the
  query's tokens weighted by an IDF table), and the IDF table;
- :mod:`.lexical`: SPLADE-v3-Lexical's query side (SPLADE-max on the query's
  own tokens only);
- :mod:`.reference`: SPLADE-max written directly with ``transformers``, and
  loaded with sentence-transformers (what the tests compare with).
"""

from splade.encoders.binary import BinaryQueryEncoder
from splade.encoders.idf import (
    ComputeIdf,
    IdfFile,
    IdfQueryEncoder,
    IdfTable,
    ModelIdf,
)
from splade.encoders.lexical import LexicalQueryEncoder
from splade.encoders.reference import load_sparse_encoder, transformers_splade_max
from splade.encoders.splade_max import (
    SpladeMaxEncoder,
    folder_activation,
    groups_by_length,
    groups_in_order,
)

__all__ = [
    "BinaryQueryEncoder",
    "ComputeIdf",
    "IdfFile",
    "IdfQueryEncoder",
    "IdfTable",
    "LexicalQueryEncoder",
    "ModelIdf",
    "SpladeMaxEncoder",
    "folder_activation",
    "groups_by_length",
    "groups_in_order",
    "load_sparse_encoder",
    "transformers_splade_max",
]
