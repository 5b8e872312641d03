"""Exports of a SPLADE index (and encoded queries) to the formats other
engines read

One module per format (``docs/exporting.md`` shows how each engine reads
them):

- :mod:`.anserini`: Anserini's ``JsonVectorCollection`` JSON lines, and the
  queries pre-encoded (TSV and JSON lines), with integer weights
  ``round(scale * w)``;
- :mod:`.ciff`: CIFF (protobuf), that PISA, Anserini, Terrier and JASS
  import, with the same integer weights;
- :mod:`.opensearch`: OpenSearch / Elasticsearch bulk files, mappings and a
  search body per query (float weights, of which both keep 9 significant
  bits).

What they read (:mod:`.source`): the postings of an index the package built
(the exhaustive index, or impact-index's converted), the external ids of its
documents, the tokens of the vocabulary (any size: term ids are 32-bit), and
queries encoded by the model. The exports are made by an experimaestro task
(:class:`~splade.export.tasks.ExportIndex`, selected by the ``export``
section of the configuration) or by the command ``python -m splade.export``
(:mod:`.__main__`) on any index folder.

Each export folder has ``export.json``: the formats, the quantization
(``round(scale * w)``, halves to even), the term names, and what was written
(documents, postings, postings dropped because their integer weight is 0,
queries).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Iterable, Optional

from splade.export.anserini import write_anserini
from splade.export.ciff import write_ciff
from splade.export.opensearch import FORBIDDEN, write_opensearch
from splade.export.source import Collection, QueryVector, quantize, term_names

__all__ = [
    "FORMATS",
    "Collection",
    "QueryVector",
    "export",
    "quantize",
    "term_names",
]

#: The formats, by name (``export.formats``): what each writes, in the
#: export folder's sub-folder of the same name
FORMATS = {
    "anserini": "Anserini JsonVectorCollection and pre-encoded queries",
    "ciff": "CIFF (Common Index File Format, protobuf)",
    "opensearch": "OpenSearch / Elasticsearch bulk files, mappings, queries",
}

#: What each format's manifest says about its weights
PRECISION = {
    "anserini": "integers round(scale * w) (halves to even); 0 left out",
    "ciff": "integers round(scale * w) (halves to even); 0 left out",
    "opensearch": (
        "floats, 6 significant digits; OpenSearch's rank_features and"
        " Elasticsearch's sparse_vector keep 9 significant bits (relative"
        " error up to 0.4%)"
    ),
}


def export(
    collection: Collection,
    folder,
    formats: Iterable[str],
    *,
    scale: float = 100.0,
    index_name: str = "splade",
    field: str = "splade",
    size: int = 1000,
    description: Optional[str] = None,
) -> Dict[str, object]:
    """Writes each format in ``folder/<format>/`` (replacing what an earlier
    export left there) and ``folder/export.json``; returns the manifest

    :param scale: integer weights are ``round(scale * w)`` (Anserini, CIFF)
    :param index_name: the index of OpenSearch / Elasticsearch bulk files
    :param field: the field of the vectors in OpenSearch / Elasticsearch
    :param size: the number of documents each OpenSearch query asks for
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    formats = list(dict.fromkeys(str(f) for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export formats {unknown} (known: {list(FORMATS)})")
    num_terms = collection.index.num_terms
    names = term_names(collection.tokens, num_terms)
    manifest: Dict[str, object] = {
        "documents": collection.num_docs,
        "terms": num_terms,
        "term_names": "ids" if collection.tokens is None else "tokens",
        "scale": scale,
        "description": description or "",
        "formats": {},
    }
    for name in formats:
        shutil.rmtree(folder / name, ignore_errors=True)  # (an earlier export)
        if name == "anserini":
            written = write_anserini(collection, folder / name, scale, names)
        elif name == "ciff":
            path = folder / name / "index.ciff"
            written = write_ciff(collection, path, scale, names, description or "")
        else:
            os_names = term_names(collection.tokens, num_terms, FORBIDDEN)
            written = write_opensearch(
                collection, folder / name, index_name, field, size, os_names
            )
        manifest["formats"][name] = {"weights": PRECISION[name], **written}
    (folder / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
