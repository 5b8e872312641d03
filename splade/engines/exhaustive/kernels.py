"""The exhaustive engine's search kernels (numba): accumulation of the
query terms' postings into a float32 accumulator, and the top-k selection
(see :class:`~splade.engines.exhaustive.search.Searcher`)"""

import numpy as np
from numba import njit, prange

__all__ = [
    "BRANCH_FREE",
    "SELECTIONS",
    "accumulate",
    "buffer_size",
    "postings_count",
    "search_batch",
    "search_one",
    "select_listed",
]


@njit(cache=True)
def accumulate(offsets, docids, weights, q_terms, q_weights, acc, touched, track):
    """Adds every posting of the query terms into ``acc``; with ``track``,
    lists the documents whose score was 0 before (``touched``, of
    ``num_docs + 1`` entries) and returns their number, or -1 when the list
    is full (possible only when a score comes back to exactly 0: negative
    weights; or when every document is reached)"""
    num_terms = offsets.shape[0] - 1
    n = 0
    last = touched.shape[0] - 1
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = q_weights[i]
        if t < 0 or t >= num_terms or w == 0:
            continue
        start, stop = offsets[t], offsets[t + 1]
        if track:
            # branch-free (whether a document was reached before is
            # unpredictable): always write, advance when it was not
            for p in range(start, stop):
                d = docids[p]
                old = acc[d]
                touched[n] = d
                n = min(n + (old == 0), last)
                acc[d] = old + w * weights[p]
        else:
            for p in range(start, stop):
                d = docids[p]
                acc[d] += w * weights[p]
    return -1 if n == last else n


@njit(cache=True)
def postings_count(offsets, q_terms, q_weights):
    """Number of postings that a query reads (those of its terms in the
    vocabulary, of a weight other than 0)"""
    num_terms = offsets.shape[0] - 1
    total = 0
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if t >= 0 and t < num_terms and q_weights[i] != 0:
            total += offsets[t + 1] - offsets[t]
    return total


# Candidates of the key-buffer top-k: a positive float32 score has an
# integer bit pattern that grows with it, hence the uint64 key
# ``(0x7FFFFFFF - bits(score)) << 32 | doc``: smaller is better, by decreasing
# score then increasing document id (keys are unique).
_KEY_SHIFT = np.uint64(32)
_DOC_MASK = np.uint64(0xFFFFFFFF)
_TOP_BITS = np.uint32(0x7FFFFFFF)
# Keys below this one have a score > 0: a zero score has the top half
# 0x7FFFFFFF, a negative one (sign bit set) wraps around above it. (NaN
# weights are not supported.) Starting from this threshold, the candidate
# test is a single comparison: two tests, one of them whether the score is
# 0, made the branch unpredictable (4x slower with half the documents at 0)
_POSITIVE = np.uint64(0x7FFFFFFF) << np.uint64(32)


# (numba's np.partition and np.sort take seconds to compile: small ones here)


@njit(cache=True, inline="always")
def _partition(keys, lo, hi):
    """Hoare partition of ``keys[lo:hi + 1]`` around a median of three:
    returns (j, i), j < i, with keys[lo:j + 1] <= pivot <= keys[i:hi + 1]
    (and keys between them equal to the pivot)"""
    a, b, c = keys[lo], keys[(lo + hi) >> 1], keys[hi]
    if a > b:
        a, b = b, a
    pivot = max(a, min(b, c))
    i, j = lo, hi
    while i <= j:
        while keys[i] < pivot:
            i += 1
        while keys[j] > pivot:
            j -= 1
        if i <= j:
            keys[i], keys[j] = keys[j], keys[i]
            i += 1
            j -= 1
    return j, i


@njit(cache=True)
def _smallest(keys, k):
    """Moves the ``k`` smallest keys to ``keys[:k]`` (unordered; quickselect)"""
    lo, hi = 0, keys.shape[0] - 1
    while lo < hi:
        j, i = _partition(keys, lo, hi)
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            return


@njit(cache=True)
def _sort_keys(keys):
    """In-place quicksort (insertion sort below 16 keys)"""
    stack = np.empty(128, np.int64)
    stack[0], stack[1] = 0, keys.shape[0] - 1
    top = 2
    while top > 0:
        top -= 2
        lo, hi = stack[top], stack[top + 1]
        while hi - lo > 16:
            j, i = _partition(keys, lo, hi)
            # the larger part waits on the stack (depth O(log n))
            if j - lo < hi - i:
                stack[top], stack[top + 1] = i, hi
                hi = j
            else:
                stack[top], stack[top + 1] = lo, j
                lo = i
            top += 2
        for x in range(lo + 1, hi + 1):
            value = keys[x]
            y = x - 1
            while y >= lo and keys[y] > value:
                keys[y + 1] = keys[y]
                y -= 1
            keys[y + 1] = value


@njit(cache=True)
def _compact(buffer, size, k):
    """Keeps the ``k`` smallest keys of ``buffer[:size]`` (unordered) in
    ``buffer[:k]``; returns the largest of them (the new threshold)"""
    _smallest(buffer[:size], k)
    return buffer[:k].max()


@njit(cache=True)
def _finish(buffer, size, k, out_docs, out_scores):
    """Sorts the candidates, writes the first k; returns their number"""
    count = min(size, k)
    if size > k:
        _smallest(buffer[:size], k)
    keys = buffer[:count]
    _sort_keys(keys)
    score_bits = out_scores.view(np.uint32)
    for i in range(count):
        key = keys[i]
        out_docs[i] = np.int64(key & _DOC_MASK)
        score_bits[i] = _TOP_BITS - np.uint32(key >> _KEY_SHIFT)
    return count


# The candidate test of the top-k: while the threshold is loose (the first
# documents), about half the documents pass, unpredictably: a branch-free
# append is faster; then few pass, and a branch (rarely taken) is cheaper.
# ``warmup`` documents are read the first way (see BRANCH_FREE).


@njit(cache=True)
def select_listed(acc, touched, n, k, buffer, out_docs, out_scores, warmup):
    """Top-k of the listed documents (score > 0), resetting their
    accumulators (a document listed twice is seen once: its second reading
    is 0)"""
    bits = acc.view(np.uint32)
    capacity = buffer.shape[0]
    size = 0
    threshold = _POSITIVE
    switch = min(n, warmup)
    for i in range(switch):
        d = touched[i]
        b = bits[d]
        acc[d] = 0
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        buffer[size] = key
        size += key < threshold
        if size == capacity:
            threshold = _compact(buffer, size, k)
            size = k
    for i in range(switch, n):
        d = touched[i]
        b = bits[d]
        acc[d] = 0
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        if key < threshold:
            buffer[size] = key
            size += 1
            if size == capacity:
                threshold = _compact(buffer, size, k)
                size = k
    return _finish(buffer, size, k, out_docs, out_scores)


@njit(cache=True)
def _select_scan(acc, k, buffer, out_docs, out_scores, warmup):
    """Top-k of every document (score > 0), then resets the accumulator"""
    bits = acc.view(np.uint32)
    capacity = buffer.shape[0]
    size = 0
    threshold = _POSITIVE
    n = acc.shape[0]
    switch = min(n, warmup)
    for d in range(switch):
        b = bits[d]
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        buffer[size] = key
        size += key < threshold
        if size == capacity:
            threshold = _compact(buffer, size, k)
            size = k
    for d in range(switch, n):
        b = bits[d]
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        if key < threshold:
            buffer[size] = key
            size += 1
            if size == capacity:
                threshold = _compact(buffer, size, k)
                size = k
    acc[:] = 0
    return _finish(buffer, size, k, out_docs, out_scores)


#: Documents per result appended branch-free to the key buffer, before
#: the selection switches to a branch (see ``Searcher``)
BRANCH_FREE = 32


def buffer_size(k: int) -> int:
    """Candidates buffered before a compaction"""
    return 2 * k + 1024


# The alternative selection (``Searcher(selection="heap")``): a binary heap
# of the k best, worst at the root, written in the output arrays


@njit(cache=True, inline="always")
def _worse(score_a, doc_a, score_b, doc_b):
    """Whether (score_a, doc_a) ranks after (score_b, doc_b)"""
    return score_a < score_b or (score_a == score_b and doc_a > doc_b)


@njit(cache=True)
def _sift_down(heap_s, heap_d, size, i):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(
            heap_s[right], heap_d[right], heap_s[left], heap_d[left]
        ):
            child = right
        if _worse(heap_s[child], heap_d[child], heap_s[i], heap_d[i]):
            heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
            heap_d[i], heap_d[child] = heap_d[child], heap_d[i]
            i = child
        else:
            return


@njit(cache=True)
def _heap_offer(heap_s, heap_d, size, k, score, doc):
    """Offers a candidate to a heap of the k best; returns the new size"""
    if size < k:
        i = size
        heap_s[i] = score
        heap_d[i] = doc
        while i > 0:
            parent = (i - 1) // 2
            if _worse(heap_s[i], heap_d[i], heap_s[parent], heap_d[parent]):
                heap_s[i], heap_s[parent] = heap_s[parent], heap_s[i]
                heap_d[i], heap_d[parent] = heap_d[parent], heap_d[i]
                i = parent
            else:
                break
        return size + 1
    if _worse(heap_s[0], heap_d[0], score, doc):
        heap_s[0] = score
        heap_d[0] = doc
        _sift_down(heap_s, heap_d, size, 0)
    return size


@njit(cache=True)
def _heap_sort(heap_s, heap_d, size):
    """Sorts the heap in place, best first"""
    n = size
    while n > 1:
        n -= 1
        heap_s[0], heap_s[n] = heap_s[n], heap_s[0]
        heap_d[0], heap_d[n] = heap_d[n], heap_d[0]
        _sift_down(heap_s, heap_d, n, 0)


@njit(cache=True)
def _heap_listed(acc, touched, n, k, out_docs, out_scores):
    """Top-k of the listed documents (score > 0) by a heap, resetting their
    accumulators"""
    size = 0
    for i in range(n):
        d = touched[i]
        s = acc[d]
        acc[d] = 0
        if s > 0:
            if (
                size < k
                or s > out_scores[0]
                or (s == out_scores[0] and d < out_docs[0])
            ):
                size = _heap_offer(out_scores, out_docs, size, k, s, d)
    _heap_sort(out_scores, out_docs, size)
    return size


@njit(cache=True)
def _heap_scan(acc, k, out_docs, out_scores):
    """Top-k of every document (score > 0) by a heap, then resets the
    accumulator"""
    size = 0
    # documents in increasing order: a tie never displaces
    for d in range(acc.shape[0]):
        s = acc[d]
        if s > 0 and (size < k or s > out_scores[0]):
            size = _heap_offer(out_scores, out_docs, size, k, s, d)
    acc[:] = 0
    _heap_sort(out_scores, out_docs, size)
    return size


#: Top-k selections (``Searcher(selection=...)``): name -> kernel switch
SELECTIONS = {"keys": 0, "heap": 1}


@njit(cache=True)
def search_one(
    offsets,
    docids,
    weights,
    q_terms,
    q_weights,
    k,
    acc,
    touched,
    buffer,
    dense_ratio,
    out_docs,
    out_scores,
    branch_free=BRANCH_FREE,
    selection=0,
):
    """One query: returns the number of results, written (sorted) in
    ``out_docs`` and ``out_scores``

    :param branch_free: documents per result appended branch-free to the
        key buffer before the selection switches to a branch
    :param selection: 0: key buffer, 1: heap (:data:`SELECTIONS`)
    """
    if k <= 0:
        return 0
    postings = postings_count(offsets, q_terms, q_weights)
    if postings == 0:
        return 0
    dense = postings >= dense_ratio * acc.shape[0]
    n = accumulate(
        offsets, docids, weights, q_terms, q_weights, acc, touched, not dense
    )
    if selection == 1:
        if dense or n < 0:
            return _heap_scan(acc, k, out_docs, out_scores)
        return _heap_listed(acc, touched, n, k, out_docs, out_scores)
    warmup = branch_free * k
    if dense or n < 0:
        return _select_scan(acc, k, buffer, out_docs, out_scores, warmup)
    return select_listed(acc, touched, n, k, buffer, out_docs, out_scores, warmup)


@njit(cache=True, parallel=True)
def search_batch(
    offsets,
    docids,
    weights,
    q_indptr,
    q_terms,
    q_weights,
    k,
    num_docs,
    workers,
    dense_ratio,
    buffer_size,
    out_docs,
    out_scores,
    out_counts,
    branch_free=BRANCH_FREE,
    selection=0,
):
    """Queries ``q`` of the CSR arrays, interleaved over ``workers`` (each
    with its own accumulator)"""
    num_queries = q_indptr.shape[0] - 1
    for w in prange(workers):
        acc = np.zeros(num_docs, np.float32)
        touched = np.empty(num_docs + 1, np.uint32)
        buffer = np.empty(buffer_size, np.uint64)
        for q in range(w, num_queries, workers):
            a, b = q_indptr[q], q_indptr[q + 1]
            out_counts[q] = search_one(
                offsets,
                docids,
                weights,
                q_terms[a:b],
                q_weights[a:b],
                k,
                acc,
                touched,
                buffer,
                dense_ratio,
                out_docs[q],
                out_scores[q],
                branch_free,
                selection,
            )
