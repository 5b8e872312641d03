"""Conversion of an impact-index (1.7.x) index, as built by xpmir's
``SparseRetrieverIndexBuilder``, into the exhaustive engine's format
(:mod:`.format`): the other engines (PISA, BMP) convert from either"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from numba import njit

from splade.engines.exhaustive.build import (
    BYTES_PER_POSTING,
    DEFAULT_BUDGET,
    MIN_CAPACITY,
)
from splade.engines.exhaustive.format import (
    MAX_UINT32,
    SparseIndex,
    npy_header,
    write_meta,
)

__all__ = ["from_impact_index"]

# --- impact-index conversion

# impact-index 1.7.1 "forward" index (what IndexBuilder.build writes; layout
# found by reading the files, checked against impact-index's own iterators
# in the tests): ``postings.dat`` holds pages of 12-byte big-endian records
# (u64 docid, f32 value), each term's pages in posting order;
# ``information.bin`` holds a little-endian header (b"XDIF", u32 version = 1,
# u32 number of terms, u32 2), then for each term: u32 number of pages, f32
# max value, u64 max docid, u32 number of postings, and its pages (u64 byte
# position in postings.dat, u32 number of postings, f32 max value, u64 max
# docid). Decoded with numba when ``manifest.json`` says format_version 3 /
# index_kind forward, else read through ``Index.postings`` (the library has
# no bulk API: one Python object per posting).


@njit(cache=True)
def _little_endian(raw, position, size):
    value = np.uint64(0)
    for i in range(size):
        value |= np.uint64(raw[position + i]) << np.uint64(8 * i)
    return value


@njit(cache=True)
def _big_endian(raw, position, size):
    value = np.uint64(0)
    for i in range(size):
        value = (value << np.uint64(8)) | np.uint64(raw[position + i])
    return value


@njit(cache=True)
def _parse_information(raw, num_terms):
    """(ok, postings per term, largest docid per term, first page of each
    term (+ end), record position of each page, postings of each page)"""
    n = raw.shape[0]
    empty = np.zeros(0, np.int64)
    # first pass: the number of pages
    position, pages = 16, 0
    for _ in range(num_terms):
        if position + 20 > n:
            return False, empty, empty, empty, empty, empty
        count = np.int64(_little_endian(raw, position, 4))
        pages += count
        position += 20 + 24 * count
    if position != n:
        return False, empty, empty, empty, empty, empty
    lengths = np.zeros(num_terms, np.int64)
    max_docs = np.zeros(num_terms, np.int64)
    page_starts = np.zeros(num_terms + 1, np.int64)
    page_positions = np.zeros(pages, np.int64)
    page_lengths = np.zeros(pages, np.int64)
    position, p = 16, 0
    for t in range(num_terms):
        count = np.int64(_little_endian(raw, position, 4))
        max_docs[t] = np.int64(_little_endian(raw, position + 8, 8))
        lengths[t] = np.int64(_little_endian(raw, position + 16, 4))
        position += 20
        total = 0
        for _ in range(count):
            byte_position = np.int64(_little_endian(raw, position, 8))
            if byte_position % 12 != 0:
                return False, empty, empty, empty, empty, empty
            page_positions[p] = byte_position // 12
            page_lengths[p] = np.int64(_little_endian(raw, position + 8, 4))
            total += page_lengths[p]
            p += 1
            position += 24
        if total != lengths[t]:
            return False, empty, empty, empty, empty, empty
        page_starts[t + 1] = p
    return True, lengths, max_docs, page_starts, page_positions, page_lengths


@njit(cache=True)
def _gather_pages(records, page_positions, page_lengths, out_docs, out_values):
    """Decodes the pages' (big-endian u64 docid, f32 value) records into
    the outputs; returns False if a docid needs more than 32 bits"""
    value_bits = out_values.view(np.uint32)
    o = 0
    for p in range(page_positions.shape[0]):
        base = page_positions[p] * 12
        for r in range(page_lengths[p]):
            position = base + 12 * r
            doc = _big_endian(records, position, 8)
            if doc > np.uint64(0xFFFFFFFF):
                return False
            out_docs[o] = doc
            value_bits[o] = np.uint32(_big_endian(records, position + 8, 4))
            o += 1
    return True


@njit(cache=True)
def _unsorted_terms(docs, bounds):
    """Terms (indices into ``bounds``) whose docids decrease somewhere"""
    found = []
    for t in range(bounds.shape[0] - 1):
        for i in range(bounds[t] + 1, bounds[t + 1]):
            if docs[i] < docs[i - 1]:
                found.append(t)
                break
    return np.array(found, np.int64)


@dataclass
class _ImpactTerms:
    """Pages of each term of an impact-index forward index"""

    lengths: np.ndarray  # postings per term
    max_docs: np.ndarray  # largest docid per term
    page_starts: np.ndarray  # per term, first page (into the page arrays)
    page_positions: np.ndarray  # per page, first record
    page_lengths: np.ndarray


def _read_impact_information(path: Path) -> _ImpactTerms | None:
    """Parses ``information.bin``, or None when the layout is not the one
    known (``from_impact_index`` then uses the library's iterators)"""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        raw = (path / "information.bin").read_bytes()
        postings_size = (path / "postings.dat").stat().st_size
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != 3 or manifest.get("index_kind") != "forward":
        return None
    if len(raw) < 16:
        return None
    magic, version, num_terms, fourth = struct.unpack_from("<4sIII", raw, 0)
    if magic != b"XDIF" or version != 1 or fourth != 2:
        return None
    ok, *arrays = _parse_information(np.frombuffer(raw, np.uint8), num_terms)
    if not ok:
        return None
    information = _ImpactTerms(*arrays)
    ends = information.page_positions + information.page_lengths
    if ends.shape[0] and ends.max() * 12 > postings_size:
        return None
    return information


def _check_sorted(docs):
    """Stable order by document (impact-index keeps insertion order)"""
    if docs.shape[0] > 1 and (docs[1:] < docs[:-1]).any():
        return np.argsort(docs, kind="stable")
    return None


def from_impact_index(
    index_path,
    folder,
    memory_budget: int = DEFAULT_BUDGET,
    num_docs: int | None = None,
    method: str = "auto",
) -> "SparseIndex":
    """Converts an impact-index (1.7.x) index into an index folder

    The source is term-major, so the conversion streams: groups of terms of
    at most ``memory_budget / 28`` postings (one term at least) are decoded
    into two buffers (8 bytes per posting) and appended to the output.
    impact-index's builder requires increasing document ids, so its postings
    come sorted (checked: a term whose are not is sorted).

    :param method: ``"numpy"`` decodes ``information.bin`` and
        ``postings.dat`` directly (impact-index 1.7.1's forward layout,
        described above; memory-mapped, decoded with numba);
        ``"iterator"`` goes through ``impact_index.Index.postings(term)``
        (one Python object per posting); ``"auto"`` (the default) decodes
        directly when the layout is recognised, else iterates. Measured
        (``bench/exhaustive.py --convert``, CPU seconds per million
        postings): numpy 0.014 (12 M postings) to 0.023 (120 M: 2.7 s CPU,
        5.6 s wall with the disk), iterator 0.26 to 0.30.
    :param num_docs: default: the largest document id + 1
    """
    index_path, folder = Path(index_path), Path(folder)
    information = None
    if method in ("auto", "numpy"):
        information = _read_impact_information(index_path)
        if information is None and method == "numpy":
            raise ValueError(f"{index_path}: not an impact-index 1.7 forward index")
    elif method != "iterator":
        raise ValueError(f"unknown method {method!r}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    capacity = max(MIN_CAPACITY, int(memory_budget) // BYTES_PER_POSTING)

    if information is not None:
        lengths = information.lengths
        max_doc = int(information.max_docs[lengths > 0].max(initial=-1))
        num_terms = lengths.shape[0]

        def groups() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            if not lengths.sum():
                return
            path = index_path / "postings.dat"
            records = np.asarray(np.memmap(path, np.uint8, mode="r"))
            cumulative = np.concatenate([[0], np.cumsum(lengths)])
            docs = np.empty(min(capacity, cumulative[-1]), np.uint32)
            values = np.empty(docs.shape[0], np.float32)
            start = 0
            while start < num_terms:
                limit = cumulative[start] + capacity
                stop = int(np.searchsorted(cumulative, limit, side="right")) - 1
                stop = min(max(stop, start + 1), num_terms)
                size = int(cumulative[stop] - cumulative[start])
                if size > docs.shape[0]:  # a single term longer than a buffer
                    docs = np.empty(size, np.uint32)
                    values = np.empty(size, np.float32)
                p0, p1 = information.page_starts[start], information.page_starts[stop]
                if not _gather_pages(
                    records,
                    information.page_positions[p0:p1],
                    information.page_lengths[p0:p1],
                    docs,
                    values,
                ):
                    raise ValueError("a document id does not fit in 32 bits")
                # (sorted by impact-index's builder; checked all the same)
                bounds = cumulative[start : stop + 1] - cumulative[start]
                for t in _unsorted_terms(docs[:size], bounds):
                    a, b = bounds[t], bounds[t + 1]
                    order = np.argsort(docs[a:b], kind="stable")
                    docs[a:b], values[a:b] = docs[a:b][order], values[a:b][order]
                yield docs[:size], values[:size]
                start = stop

    else:
        import impact_index

        source = impact_index.Index.load(str(index_path), False)
        num_terms = source.num_postings()  # (the number of terms)
        lengths = np.array(
            [source.postings(t).length() for t in range(num_terms)], np.int64
        )
        max_doc = max(
            (source.postings(t).max_doc_id() for t in range(num_terms) if lengths[t]),
            default=-1,
        )
        record = np.dtype([("doc", np.uint64), ("value", np.float32)])

        def groups() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            chunks, size = [], 0
            for t in range(num_terms):
                if lengths[t] == 0:
                    continue
                postings = np.fromiter(
                    ((p.docid, p.value) for p in source.postings(t)),
                    record,
                    lengths[t],
                )
                order = _check_sorted(postings["doc"])
                if order is not None:
                    postings = postings[order]
                chunks.append(postings)
                size += postings.shape[0]
                if size >= capacity:
                    chunk = np.concatenate(chunks)
                    yield chunk["doc"], chunk["value"]
                    chunks, size = [], 0
            if chunks:
                chunk = np.concatenate(chunks)
                yield chunk["doc"], chunk["value"]

    if max_doc > MAX_UINT32:
        raise ValueError(f"document id {max_doc} does not fit in 32 bits")
    if num_docs is None:
        num_docs = max_doc + 1
    elif max_doc >= num_docs:
        raise ValueError(f"document id {max_doc} >= num_docs={num_docs}")
    offsets = np.zeros(num_terms + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    np.save(folder / "offsets.npy", offsets)
    written = 0
    with (
        (folder / "docids.npy").open("wb") as fdocs,
        (folder / "weights.npy").open("wb") as fweights,
    ):
        fdocs.write(npy_header(np.uint32, total))
        fweights.write(npy_header(np.float32, total))
        for docs, values in groups():
            docs.astype(np.uint32).tofile(fdocs)
            values.astype(np.float32, copy=False).tofile(fweights)
            written += docs.shape[0]
    if written != total:
        raise RuntimeError(f"{written} postings read, {total} expected")
    write_meta(folder, num_docs, num_terms, total)
    return SparseIndex.load(folder, mmap=True)
