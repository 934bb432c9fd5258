"""Recovery: shard snapshots, where checkpoints live, clean-up, restore, inspection.

Imports only ``state``, ``joins`` and the standard library (never Bytewax): the
dataflow (``dataflows/``) creates Bytewax's SQLite recovery partitions with
``python -m bytewax.recovery DIR N`` and wires these pieces into its shard
logic. See ``docs/recovery.md``.
"""
