"""Avro input: the records of an Avro object container file.

A record's identity is ``Event.eid = joins.content_id(raw)`` where ``raw`` is
the canonical JSON of the datum
(``json.dumps(datum, sort_keys=True, separators=(",", ":"), default=str)``),
which is also what its dead letter's ``raw`` holds (cut at ``RAW_LIMIT``); its
position is its record index in the file. A datum that is not a record is a
dead letter. fastavro raises many exception types on bad bytes: an unreadable
file header makes one dead letter for the whole file, a corrupt block or record
one for the rest of the file (``raw`` is the error's ``repr``; each is reported
by the read that reached it, not again on resume).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fastavro

from dataflows.inputs.fields import RAW_LIMIT, BadRecord, Invalid, SourceFormat, key_of, ts_of
from joins import Event, Side, content_id


def _broken_tail(
    side: Side, partition: str, start: int, index: int, batch: list[Event | Invalid],
    what: str, exc: Exception,
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """The last batch of an Avro file that broke at record ``index``: what was read
    so far and, unless the break lies before the resume position ``start`` (it was
    reported before the resume), one dead letter for the rest of the file."""
    if index >= start:
        reason = f"avro: {what} ({type(exc).__name__}: {exc}); rest of file skipped"
        batch.append(Invalid(side, reason, repr(exc), partition, index))
        yield batch, index + 1
    elif batch:
        yield batch, index


def read_avro(
    handle: Any, side: Side, fmt: SourceFormat, partition: str, start: int, size: int
) -> Iterator[tuple[list[Event | Invalid], int]]:
    """Batches of at most ``size`` events and dead letters of an Avro file, from
    record index ``start``, each with the index to resume after it."""
    dumps = json.dumps
    batch: list[Event | Invalid] = []
    index = 0
    try:
        blocks = iter(fastavro.block_reader(handle))
    except Exception as exc:  # fastavro raises many types on bad bytes
        if start == 0:
            reason = (f"avro: cannot read the file header ({type(exc).__name__}: {exc}); "
                      "file skipped")
            yield [Invalid(side, reason, repr(exc), partition, 0)], 1
        return
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            break
        except Exception as exc:  # see above
            yield from _broken_tail(side, partition, start, index, batch,
                                    f"corrupt block after record {index}", exc)
            return
        n = block.num_records
        if index + n <= start:
            index += n
            continue
        records = iter(block)
        while True:
            try:
                datum = next(records)
            except StopIteration:
                break
            except Exception as exc:  # see above
                yield from _broken_tail(side, partition, start, index, batch,
                                        f"corrupt record {index}", exc)
                return
            if index < start:
                index += 1
                continue
            canon = dumps(datum, sort_keys=True, separators=(",", ":"), default=str)
            if type(datum) is not dict:
                batch.append(Invalid(side, f"record is not an object (got {type(datum).__name__})",
                                     canon[:RAW_LIMIT], partition, index))
            else:
                try:
                    event = Event(side, key_of(datum, fmt), ts_of(datum, fmt),
                                  content_id(canon.encode()), datum, partition, index)
                except BadRecord as bad:
                    batch.append(Invalid(side, str(bad), canon[:RAW_LIMIT], partition, index))
                else:
                    batch.append(event)
            index += 1
            if len(batch) >= size:
                yield batch, index
                batch = []
    if batch:
        yield batch, index
