"""The Bytewax side of streamjoin: the only package that imports bytewax.

At the top, the dataflow itself and its launcher:

- :mod:`~dataflows.flow`: the dataflow (sources -> shard router -> one joiner
  per shard -> sinks); :mod:`~dataflows.shard_logic`: the stateful operator's
  logic per shard; :mod:`~dataflows.shards`: which shard owns a key and which
  worker a shard;
- :mod:`~dataflows.run`: the worker processes of a run, ``run.json`` and the
  summary; :mod:`~dataflows.lifetime`: how they stop together (signals to the
  parent, workers that die with it); :mod:`~dataflows.errors`: this package's
  errors;
- :mod:`~dataflows.generator` (with :mod:`~dataflows.progress`): synthetic
  impressions and plays.

The rooms, each a package whose docstring says what it owns:
:mod:`~dataflows.inputs` (input records to events and dead letters),
:mod:`~dataflows.sources` (Bytewax sources), :mod:`~dataflows.outputs` (output
records and encodings), :mod:`~dataflows.sinks` (Bytewax sinks),
:mod:`~dataflows.recovering` (recovery wiring), :mod:`~dataflows.metrics`
(Prometheus), :mod:`~dataflows.validate` (the batch check),
:mod:`~dataflows.config` (settings) and :mod:`~dataflows.cli` (the
``streamjoin`` command). No import circle between modules or rooms
(``tests/test_architecture.py``).
"""
