"""The package's benchmarks, run from the repository root as modules:
``python -m bench.<name> --help`` (see BENCHMARKS.md for the figures and the
command of each)

- :mod:`bench.retrieval_engines`: every retrieval engine of
  :mod:`splade.engines` side by side (latency, recall@10, build cost), on
  SciFact and splade-mix;
- :mod:`bench.approximate`: the recall-latency curves of the approximate
  engines against the exact one, at 100k and 1M documents of splade-mix;
- :mod:`bench.seismic_settings`: Seismic search settings on an index built
  by :mod:`bench.retrieval_engines`;
- :mod:`bench.splade_mix`: generates splade-mix (real SPLADE vectors mixed
  to any number of documents);
- :mod:`bench.exhaustive`: the exhaustive engine against its references on
  Zipf-distributed vectors, and the measurements behind its design;
- :mod:`bench.encoding`, :mod:`bench.gpu_check`, :mod:`bench.gpu_throughput`:
  encoding and training throughput;
- :mod:`bench.shards`: merging sharded indices;
- :mod:`bench.local_collections`: effectiveness on the local collections.

:mod:`bench.common` holds what they share (collections, timers, builds in
a child process, the Zipf generator, the default paths of ``../shared``);
no benchmark imports another one.
"""
