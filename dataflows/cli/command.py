"""The ``streamjoin`` command: generate data, run the join, validate a run, demo.

Bad flags end the command with exit status 2 and one line on stderr (the value
given and what is allowed); a failed run ends with status 1 and one line
naming the cause and the fix (``--debug`` adds the traceback); a run stopped by
SIGTERM, SIGINT or SIGHUP ends with 128 + the signal (143, 130, 129) once all
its processes have exited. Log lines go to stderr in one format for every
process (:mod:`dataflows.console.logs`), at ``--log-level`` or
``STREAMJOIN_LOG_LEVEL``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from dataflows.config import (
    DEFAULT_STATE_MEMORY_BYTES,
    INPUT_FORMATS,
    MIN_STATE_MEMORY_BYTES,
    OUTPUT_FORMATS,
    config_of,
    effective_settings,
    format_settings,
    format_size,
    resolve,
)
from dataflows.config.source_budget import MIN_BATCH, READS_IN_FLIGHT
from dataflows.console import (
    LEVELS,
    LOG_LEVEL_ENV,
    ConsoleOptions,
    describe_os_error,
    logger,
    logging_to_terminal,
)
from dataflows.errors import ConfigError, Stopped
from dataflows.inputs import TIME_UNITS
from joins import HOWS, StreamJoinError

PROG = "streamjoin"
_log = logger("cli")

_MAIN_EPILOG = """\
examples:
  streamjoin demo --out demo-out          generate ~1M events, join with 2 processes, validate
  streamjoin kafka-dev                    a Kafka (mock) and a Schema Registry to try, until Ctrl-C
  streamjoin generate --out data --impressions 100000 --keys 20000
  streamjoin run --left data/impressions.jsonl --right data/plays.jsonl --out out
  streamjoin validate out                 check out/ against the batch join of the inputs

Run `streamjoin COMMAND --help` for the flags of each command.
"""

_RUN_EPILOG = """\
examples:
  # a left join of impressions with the plays up to 30 minutes after them
  streamjoin run --left data/impressions.jsonl --right data/plays.jsonl --out out

  # directories or globs: one source partition per file; 2 processes
  streamjoin run --left 'data/impressions*.jsonl' --right data/plays/ \\
      --how full --upper 1h --max-out-of-orderness 10s --processes 2 --out out

  # the same keys in a config file (TOML or JSON); flags override it
  streamjoin run --config join.toml --out out2

  # Kafka topics to the end offsets at start, outputs to topics (see docs/kafka.md)
  streamjoin run --left kafka://127.0.0.1:9092/demo.impressions \\
      --right kafka://127.0.0.1:9092/demo.plays --until-end \\
      --out-kafka kafka://127.0.0.1:9092/demo.out --out out-kafka

Durations need a unit: 250ms, 5s, 30m, 2h, 1h30m (a bare number is refused, but
0 is fine); a negative bound needs '=', e.g. --lower=-10s. A pair (l, r) matches when
l.key == r.key and l.ts + lower <= r.ts <= l.ts + upper.

Sizes (--state-memory): bytes, or an integer with K, M, G or T, optionally
followed by iB; all binary (512M = 512MiB = 536870912 bytes).

Writes OUT/joined/, OUT/late/, OUT/invalid/ (one file per shard that has rows)
and OUT/run.json (parameters, counters, throughput); check it with
`streamjoin validate OUT`. OUT must be new, empty, or an earlier run of the same
settings and input files (its files are replaced; nothing else is touched).

While it runs: on a terminal, one live line (events in per side, events/s, the
watermark and its lag behind the newest event, state on disk, late and invalid
counts, share read and ETA); off a terminal, the same as a log line every
--progress-interval. --quiet turns it off.

Exit status: 0 done; 1 failed (one line: the cause and the fix; --debug adds
the traceback), also when a side's invalid share exceeds --max-invalid-fraction;
2 a usage error; 128 + N stopped by signal N. SIGTERM, SIGINT or SIGHUP stops
every process of the run (exit 143, 130, 129); with --recovery-dir, the same
command then resumes.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        hint = f"see {self.prog} --help"
        if message.startswith("unrecognized arguments") and any(
            os.path.exists(word) for word in message.split(":", 1)[-1].split()
        ):
            # ``--left data/*.jsonl`` unquoted: the shell passed every file.
            hint = "files after a flag? quote a glob so that the shell does not expand it: " \
                "--left 'data/*.jsonl'"
        self.exit(2, f"{self.prog}: error: {message} ({hint})\n")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group(
        "inputs",
        "Each of --format, --key-field, --time-field and --time-unit sets both sides; "
        "--left-format, --right-key-field and so on set one side (and win over the shared "
        "flag).",
    )
    src.add_argument(
        "--left", metavar="PATH|URL",
        help="left input (impressions): file, dir or glob, or kafka://HOST:PORT[,HOST:PORT]/TOPIC",
    )
    src.add_argument(
        "--right", metavar="PATH|URL",
        help="right input (plays): file, dir or glob, or kafka://HOST:PORT[,HOST:PORT]/TOPIC",
    )
    src.add_argument(
        "--format",
        choices=INPUT_FORMATS,
        help="input format (default: by extension, .csv .jsonl .ndjson .json .avro; else jsonl); "
        "for a Kafka topic its values' format: jsonl (JSON, the default) or avro (Confluent Avro)",
    )
    src.add_argument(
        "--key-field",
        metavar="NAME[,NAME]",
        help='field(s) holding the join key (default key); several make the key the JSON '
        'array of their values, e.g. ["u1","t9"]',
    )
    src.add_argument("--time-field", metavar="NAME", help="field holding event time (default ts)")
    src.add_argument(
        "--time-unit", choices=TIME_UNITS, help="unit of the time field (default ms)"
    )
    for side in ("left", "right"):
        src.add_argument(f"--{side}-format", choices=INPUT_FORMATS, help=argparse.SUPPRESS)
        src.add_argument(f"--{side}-key-field", metavar="NAME[,NAME]", help=argparse.SUPPRESS)
        src.add_argument(f"--{side}-time-field", metavar="NAME", help=argparse.SUPPRESS)
        src.add_argument(f"--{side}-time-unit", choices=TIME_UNITS, help=argparse.SUPPRESS)
    join = p.add_argument_group("join")
    join.add_argument("--how", choices=HOWS, help="join type (default left)")
    join.add_argument("--lower", metavar="DURATION", help="interval lower bound (default 0)")
    join.add_argument("--upper", metavar="DURATION", help="interval upper bound (default 30m)")
    join.add_argument(
        "--max-out-of-orderness",
        metavar="DURATION",
        help="how far behind its partition's newest event an event may be (default 5s)",
    )
    join.add_argument(
        "--allowed-lateness", metavar="DURATION", help="extra grace after the watermark (default 0)"
    )
    join.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        help="a partition silent this long stops holding the watermark (default 30s)",
    )
    out = p.add_argument_group("outputs and execution")
    out.add_argument("--out", metavar="DIR", help="output directory (required)")
    out.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default jsonl")
    out.add_argument("--processes", type=int, metavar="N", help="Bytewax processes (default 1)")
    out.add_argument(
        "--workers-per-process", type=int, metavar="W", help="worker threads each (default 1)"
    )
    out.add_argument("--state-dir", metavar="DIR", help="RocksDB state (default OUT/state)")
    out.add_argument(
        "--state-memory",
        metavar="SIZE",
        help="RocksDB's memory budget in each process: one block cache for the blocks and "
        "the memtables (at most half of it) of all the process's shards; the process's "
        f"RSS is somewhat above it. A size such as 512M, 256MiB, 1GiB or bytes; at least "
        f"{format_size(MIN_STATE_MEMORY_BYTES)} (default "
        f"{format_size(DEFAULT_STATE_MEMORY_BYTES)})",
    )
    out.add_argument("--shards", type=int, metavar="S", help="virtual shards (default 32)")
    out.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"records per read of a source partition (default 10000); a process holds at most "
        f"{READS_IN_FLIGHT} reads' worth: with more partitions each read is cut to its share (at "
        f"least {MIN_BATCH:,}). Larger: faster, more memory",
    )
    out.add_argument(
        "--config",
        metavar="FILE",
        help="TOML (or JSON) file of settings with the flags' names (upper = \"30m\"; "
        "paths relative to the file); also STREAMJOIN_CONFIG",
    )
    out.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings and where each came from (flag, env, file, "
        "default), as TOML, and exit",
    )
    out.add_argument(
        "--max-invalid-fraction",
        metavar="X",
        help="fail the run (exit 1, after its outputs are written) when more than this share "
        "of a side's records are invalid (default 0.5; 1: never)",
    )
    add_metrics_flags(p)
    from dataflows.cli.snapshots import add_recovery_flags

    add_recovery_flags(p)
    add_console_flags(p, progress=True)
    add_kafka_flags(p)


def add_console_flags(p: argparse.ArgumentParser, *, progress: bool = False) -> None:
    """``--log-level`` and ``--debug`` (every command); ``--quiet`` and
    ``--progress-interval`` for commands that run a join."""
    con = p.add_argument_group("console")
    con.add_argument(
        "--log-level",
        choices=list(LEVELS),
        help=f"log lines at this level and above, on stderr (default {LOG_LEVEL_ENV} or info)",
    )
    con.add_argument(
        "--debug", action="store_true", help="show tracebacks of anticipated failures too"
    )
    if progress:
        con.add_argument(
            "--quiet", action="store_true", help="no progress: neither the live line nor its logs"
        )
        con.add_argument(
            "--progress-interval",
            metavar="DURATION",
            help="off a terminal, log a progress line this often (default 10s)",
        )


def add_kafka_flags(p: argparse.ArgumentParser) -> None:
    """The Kafka flags of ``run`` (docs/kafka.md)."""
    k = p.add_argument_group(
        "Kafka (--left/--right kafka://HOST:PORT[,HOST:PORT]/TOPIC; see docs/kafka.md)"
    )
    k.add_argument(
        "--kafka-config", action="append", metavar="KEY=VALUE",
        help="a librdkafka setting (security.protocol=SASL_SSL, sasl.password=...; "
        "repeatable; wins over the config file's [kafka] table); schema.registry.KEY=VALUE "
        "sets the Schema Registry client's KEY. Secrets are never shown",
    )
    k.add_argument(
        "--schema-registry", metavar="URL",
        help="Schema Registry for Confluent Avro values (inputs and outputs)",
    )
    k.add_argument("--left-schema", metavar="FILE",
                   help="Avro reader schema of a Confluent Avro left topic (default: the "
                   "latest schema of its registry subject TOPIC-value)")
    k.add_argument("--right-schema", metavar="FILE", help="likewise for the right topic")
    k.add_argument(
        "--until-end", action="store_true", default=None,
        help="read the Kafka inputs up to their end offsets at the first start, then end "
        "(default: tail until stopped with SIGTERM or Ctrl-C; resume with --recovery-dir)",
    )
    k.add_argument(
        "--out-kafka", metavar="URL",
        help="send the outputs to topics kafka://HOST:PORT/PREFIX.joined, .late and .invalid "
        "(which must exist); --out stays the local directory for run.json and counters",
    )
    for kind in ("joined", "late", "invalid"):
        k.add_argument(f"--out-{kind}", metavar="URL",
                       help=f"send the {kind} output to kafka://HOST:PORT/TOPIC")
    k.add_argument(
        "--kafka-delivery", choices=("transactional", "at-least-once"),
        help="Kafka outputs: transactional (default: a transaction per shard and epoch, "
        "committed once the epoch's snapshot is durable; consumers set "
        "isolation.level=read_committed) or at-least-once (falls back to it when the "
        "brokers refuse transactions and this flag is not given)",
    )


def add_metrics_flags(p: argparse.ArgumentParser) -> None:
    """``--metrics-port``, ``--metrics-host`` and ``--metrics-linger`` (run and demo)."""
    mon = p.add_argument_group("metrics (Prometheus; see grafana/README.md)")
    mon.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="process i serves http://HOST:P+i/metrics; 0: an ephemeral port each "
        "(printed, and in run.json); default 9464, or ephemeral if 9464+i is taken",
    )
    mon.add_argument(
        "--metrics-host", metavar="ADDR", help="address to bind metrics to (default 127.0.0.1)"
    )
    mon.add_argument(
        "--metrics-linger",
        metavar="DURATION",
        help="at the end, a process that was scraped waits up to this long (and 3 scrape "
        "intervals) for a scrape of its final counts (default 30s; 0: never)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Exact event-time interval joins of two keyed streams on Bytewax.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    gen = sub.add_parser(
        "generate",
        help="write a synthetic impressions/plays dataset",
        description="Write OUT/impressions.* and OUT/plays.* with disorder, late events, "
        "duplicates and (optionally) malformed records.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  streamjoin generate --out data --impressions 100000 --keys 20000 "
        "--seed 7 --partitions 2\n",
    )
    gen.add_argument("--out", metavar="DIR", help="where the files go (required without --to)")
    gen.add_argument("--format", choices=INPUT_FORMATS, default="jsonl")
    from dataflows.cli.demo import add_generator_flags
    from dataflows.cli.kafka_commands import add_generate_kafka_flags, add_kafka_dev_command

    add_generator_flags(gen)
    add_generate_kafka_flags(gen)
    add_console_flags(gen)

    run = sub.add_parser(
        "run",
        help="join two inputs",
        description="Join --left and --right by key and event time.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_flags(run)

    val = sub.add_parser(
        "validate",
        help="check a run's outputs against the batch join of its inputs",
        description="Recompute the exact result of a run from its inputs and run.json "
        "and compare it with OUT/joined/, OUT/late/ and the counters.",
    )
    val.add_argument("dir", metavar="DIR", help="the --out directory of a run")
    add_console_flags(val)

    from dataflows.cli.snapshots import add_recovery_commands

    for command in add_recovery_commands(sub):
        add_console_flags(command, progress=command.prog.endswith("replay"))
    add_kafka_dev_command(sub)

    demo = sub.add_parser(
        "demo",
        help="generate ~1M events, join them with 2 processes, validate",
        description="Generate about a million events (with disorder, late events, "
        "duplicates and malformed records), run a left join with 2 processes, "
        "validate the outputs and print the summary.",
    )
    demo.add_argument(
        "--out",
        default="demo-out",
        metavar="DIR",
        help="where to write: DIR/input/ (the generated data) and DIR/run/ (the run's "
        "outputs) (default demo-out)",
    )
    demo.add_argument(
        "--impressions",
        type=int,
        default=700_000,
        metavar="N",
        help="left events to generate; plays, orphan plays, late events, duplicates and "
        "malformed records come on top, about 1.3 N events in all (default 700000)",
    )
    demo.add_argument(
        "--processes",
        type=int,
        default=2,
        metavar="N",
        help="worker processes of the run (default 2)",
    )
    add_metrics_flags(demo)
    add_console_flags(demo, progress=True)
    return parser


def _run(args: argparse.Namespace) -> int:
    from dataflows.run import run

    values: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS
    }
    resolved, warnings = resolve(values, args.config)
    for warning in warnings:
        _log.warning("%s", warning)
    cfg = config_of(resolved)
    if args.print_config:
        print(format_settings(effective_settings(resolved, cfg)))
        return 0
    run(cfg, console=ConsoleOptions.of(args))
    shown = os.path.relpath(cfg.out_dir)
    print(f"check it with: {PROG} validate {cfg.out_dir if shown.startswith('..') else shown}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from dataflows.validate import main as validate_main

    code: int = validate_main([args.dir])
    return code


#: Flags of ``run`` that are not settings of the run.
_NOT_SETTINGS = ("command", "config", "print_config", "log_level", "debug", "quiet")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamjoin`` console script."""
    args = _parser().parse_args(argv)
    try:
        console = ConsoleOptions.of(args)
    except ConfigError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    with logging_to_terminal(console.level):
        return _dispatch(args, console)


def _dispatch(args: argparse.Namespace, console: ConsoleOptions) -> int:
    """Run the command; anticipated failures end in one line (see the module
    docstring), with their traceback logged first under ``--debug``."""
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "validate":
            return _validate(args)
        if args.command in ("snapshots", "replay"):
            from dataflows.cli.snapshots import recovery_command

            return recovery_command(args)
        if args.command == "generate":
            from dataflows.cli.demo import generate_command
            from dataflows.cli.kafka_commands import generate_to_kafka

            if args.to:
                return generate_to_kafka(args)
            if not args.out:
                msg = "generate needs --out DIR (files) or --to kafka://HOST:PORT/PREFIX"
                raise ConfigError(msg)
            return generate_command(args)
        if args.command == "kafka-dev":
            from dataflows.cli.kafka_commands import kafka_dev_command

            return kafka_dev_command(args)
        from dataflows.cli.demo import demo_command

        return demo_command(args)
    except ConfigError as exc:
        _traceback(console, exc)
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:
        _traceback(console, exc)
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except StreamJoinError as exc:
        _traceback(console, exc)
        print(f"{PROG} {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file of the command's own, e.g. generate --out on a full disk
        _traceback(console, exc)
        print(f"{PROG} {args.command}: failed: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


def _traceback(console: ConsoleOptions, exc: BaseException) -> None:
    if console.debug:
        _log.error("traceback (--debug):", exc_info=exc)


if __name__ == "__main__":
    sys.exit(main())
