"""CIFF, the Common Index File Format (Lin et al., "Supporting
Interoperability Between Open-Source Search Engines with the Common Index
File Format", SIGIR 2020, https://github.com/osirrc/ciff): the index that
PISA (``ciff2pisa``), Anserini, Terrier and JASS import

A ``.ciff`` file is a sequence of length-delimited protobuf messages (each
prefixed by its size as a varint, as Java's ``writeDelimitedTo`` writes
them), in this order: one ``Header``, ``num_postings_lists``
``PostingsList`` messages, ``num_docs`` ``DocRecord`` messages. The messages
(osirrc/ciff ``src/main/protobuf/CommonIndexFileFormat.proto``, proto3)::

    Header       {int32 version = 1; int32 num_postings_lists = 2;
                  int32 num_docs = 3; int32 total_postings_lists = 4;
                  int32 total_docs = 5; int64 total_terms_in_collection = 6;
                  double average_doclength = 7; string description = 8;}
    Posting      {int32 docid = 1;  // the gap to the previous docid
                  int32 tf = 2;}
    PostingsList {string term = 1; int64 df = 2; int64 cf = 3;
                  repeated Posting postings = 4;}
    DocRecord    {int32 docid = 1; string collection_docid = 2;
                  int32 doclength = 3;}

They are encoded here directly (protobuf's wire format: varints, and
length-delimited fields), vectorized with numpy, so that no protobuf
compiler or runtime is needed and an index of a billion postings is written
at numpy's speed. The impacts are the integer weights ``round(scale * w)``
(the "term frequencies" of an impact index: PISA and Anserini score a
document by the sum of its impacts times the query's weights); postings
whose impact is 0 are left out. Postings lists come in the byte order of
their terms (as Lucene's, which PISA's lexicon expects), documents in the
index's order; a document's length is the sum of its impacts.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List

import numpy as np

from splade.export.source import Collection, quantize, term_names

__all__ = ["VERSION", "encode_varints", "write_ciff"]

#: CIFF version written in the header
VERSION = 1
#: Postings encoded at once (about 100 bytes each while encoding)
GROUP = 1_000_000

_POSTINGS_TAG = (4 << 3) | 2  # PostingsList.postings, length-delimited
_DOCID_TAG = (1 << 3) | 0  # Posting.docid, varint
_TF_TAG = (2 << 3) | 0  # Posting.tf, varint


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of each (unsigned) value as a varint"""
    values = np.asarray(values, np.uint64)
    sizes = np.ones(values.shape, np.int64)
    for k in range(1, 10):
        sizes += values >= np.uint64(1) << np.uint64(7 * k)
    return sizes


def encode_varints(values: np.ndarray) -> bytes:
    """The values (non-negative integers), each as a protobuf varint,
    concatenated"""
    values = np.asarray(values, np.uint64).ravel()
    sizes = varint_sizes(values)
    starts = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), np.uint8)
    for j in range(10):
        present = sizes > j
        if not present.any():
            break
        chunk = (values[present] >> np.uint64(7 * j)) & np.uint64(0x7F)
        more = (sizes[present] > j + 1).astype(np.uint64) << np.uint64(7)
        out[starts[present] + j] = (chunk | more).astype(np.uint8)
    return out.tobytes()


def _varint(value: int) -> bytes:
    """One varint (pure Python: faster than numpy for a single value)"""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes_field(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _header(**values) -> bytes:
    message = b""
    for number, name in enumerate(
        [
            "version",
            "num_postings_lists",
            "num_docs",
            "total_postings_lists",
            "total_docs",
            "total_terms_in_collection",
        ],
        start=1,
    ):
        message += _key(number, 0) + _varint(int(values[name]))
    message += _key(7, 1) + struct.pack("<d", float(values["average_doclength"]))
    message += _bytes_field(8, values["description"].encode("utf-8"))
    return message


def _postings_fields(docids: np.ndarray, impacts: np.ndarray, firsts: np.ndarray):
    """The ``postings`` fields of postings lists laid end to end (docids
    increasing within a list; ``firsts``: where each list starts), and the
    bytes of each posting"""
    gaps = np.diff(docids.astype(np.int64), prepend=0)
    gaps[firsts] = docids[firsts]
    sizes = varint_sizes(gaps) + varint_sizes(impacts)
    fields = np.empty((docids.shape[0], 6), np.uint64)
    fields[:, 0] = _POSTINGS_TAG
    fields[:, 1] = 2 + sizes
    fields[:, 2] = _DOCID_TAG
    fields[:, 3] = gaps
    fields[:, 4] = _TF_TAG
    fields[:, 5] = impacts
    return encode_varints(fields), 4 + sizes


def _groups(terms, offsets, size: int):
    """Consecutive terms of ``terms`` whose postings add up to about
    ``size`` (one term at least)"""
    group, total = [], 0
    for term in terms:
        group.append(term)
        total += int(offsets[term + 1] - offsets[term])
        if total >= size:
            yield group
            group, total = [], 0
    if group:
        yield group


def write_ciff(
    collection: Collection,
    path,
    scale: float = 100.0,
    names: List[str] | None = None,
    description: str = "",
    chunk: int = 10_000_000,
) -> Dict[str, float]:
    """Writes the CIFF file of a collection; returns its statistics

    :param scale: impacts are ``round(scale * w)``
    :param names: the term names (default: :func:`term_names` of the
        collection's tokens)
    :param chunk: postings read at once (about 40 bytes each)
    """
    index = collection.index
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = names or term_names(collection.tokens, index.num_terms)
    offsets = np.asarray(index.offsets)
    num_docs = collection.num_docs

    # First pass: impacts per term (df, cf), document lengths
    lengths = np.zeros(num_docs, np.int64)
    df = np.zeros(index.num_terms, np.int64)
    cf = np.zeros(index.num_terms, np.int64)
    dropped = 0
    for start in range(0, index.num_postings, chunk):
        stop = min(start + chunk, index.num_postings)
        impacts = quantize(index.weights[start:stop], scale)
        if (impacts < 0).any():
            raise ValueError("negative weights cannot be impacts")
        kept = impacts > 0
        dropped += int((~kept).sum())
        positions = np.arange(start, stop, dtype=np.int64)[kept]
        terms = np.searchsorted(offsets, positions, side="right") - 1
        df += np.bincount(terms, minlength=index.num_terms)
        cf += np.bincount(terms, impacts[kept], minlength=index.num_terms).astype(
            np.int64
        )
        docids = np.asarray(index.docids[start:stop])[kept]
        lengths += np.bincount(docids, impacts[kept], minlength=num_docs).astype(
            np.int64
        )
    terms = [int(t) for t in np.flatnonzero(df)]
    terms.sort(key=lambda t: names[t].encode("utf-8"))
    total = int(lengths.sum())
    average = total / num_docs if num_docs else 0.0
    if not description:
        description = (
            f"SPLADE index exported by xpmir-splade: impacts round({scale:g} w)"
            " of the SPLADE weights w; score = sum of impact x query weight"
        )
    with path.open("wb") as out:
        header = _header(
            version=VERSION,
            num_postings_lists=len(terms),
            num_docs=num_docs,
            total_postings_lists=len(terms),
            total_docs=num_docs,
            total_terms_in_collection=total,
            average_doclength=average,
            description=description,
        )
        out.write(_varint(len(header)) + header)
        for group in _groups(terms, offsets, GROUP):
            spans = [slice(int(offsets[t]), int(offsets[t + 1])) for t in group]
            impacts = quantize(
                np.concatenate([index.weights[span] for span in spans]), scale
            )
            docids = np.concatenate([index.docids[span] for span in spans])
            counts = np.array([span.stop - span.start for span in spans])
            ends = np.cumsum(counts)
            kept = impacts > 0
            kept_ends = np.cumsum(kept)[ends - 1]
            kept_starts = np.concatenate([[0], kept_ends[:-1]])
            data, sizes = _postings_fields(docids[kept], impacts[kept], kept_starts)
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            for term, first, last in zip(group, kept_starts, kept_ends, strict=True):
                message = (
                    _bytes_field(1, names[term].encode("utf-8"))
                    + _key(2, 0)
                    + _varint(int(df[term]))
                    + _key(3, 0)
                    + _varint(int(cf[term]))
                    + data[bounds[first] : bounds[last]]
                )
                out.write(_varint(len(message)) + message)
        for docid in range(num_docs):
            message = (
                _key(1, 0)
                + _varint(docid)
                + _bytes_field(2, collection.docid(docid).encode("utf-8"))
                + _key(3, 0)
                + _varint(int(lengths[docid]))
            )
            out.write(_varint(len(message)) + message)
    return {
        "postings_lists": len(terms),
        "documents": num_docs,
        "postings": int(df.sum()),
        "dropped_postings": dropped,
        "total_terms_in_collection": total,
    }
