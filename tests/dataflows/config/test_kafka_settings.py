"""Kafka settings of a run: topics as inputs, outputs to topics, librdkafka
settings from the config file's [kafka] table, the environment and flags (key
by key), and secrets that never reach a printed config, a written config or
run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataflows.cli.command import main
from dataflows.config import RunConfig, build_config, effective_settings, format_settings, resolve
from dataflows.config.kafka_config import SECRETS_ENV, secrets_env, with_secrets
from dataflows.errors import ConfigError

K = "kafka://127.0.0.1:9092"
BASE = {"left": f"{K}/imp", "right": f"{K}/plays", "out": "out"}


def config(environ: dict[str, str] | None = None, file: str | None = None,
           **values: object) -> RunConfig:
    return build_config({**BASE, **values}, file, environ or {})


def test_topics_as_inputs_read_as_their_values_format(tmp_path: Path) -> None:
    schema = tmp_path / "plays.avsc"
    schema.write_text(json.dumps({"type": "record", "name": "P", "fields": [
        {"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]}))
    cfg = config(right_format="avro", right_schema=str(schema),
                 schema_registry="http://127.0.0.1:8081/")
    assert (cfg.left.kafka, cfg.left.paths, cfg.left.format) == (f"{K}/imp", (), "jsonl")
    assert cfg.left.value_format == "json"
    assert cfg.right.value_format == "confluent-avro"
    assert cfg.right.reader_schema is not None
    assert cfg.right.reader_schema["name"] == "P"
    assert cfg.kafka.registry == "http://127.0.0.1:8081"
    assert cfg.partitions() == ()  # the brokers list a topic's partitions
    assert RunConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"left_format": "csv"}, "jsonl (JSON values) or avro (Confluent Avro)"),
        ({"right_format": "avro"}, "need a Schema Registry: --schema-registry URL"),
        ({"left": [f"{K}/imp", "x.jsonl"]}, "one Kafka topic, or files"),
        ({"left": "kafka://127.0.0.1/imp"}, "needs HOST:PORT"),
        ({"out": f"{K}/o"}, "--out-kafka kafka://HOST:PORT/PREFIX"),
        ({"out_kafka": f"{K}/imp"}, None),
        ({"out_joined": f"{K}/plays"}, "topic 'plays' is named twice"),
        ({"kafka_delivery": "exactly-once"}, "--kafka-delivery must be one of"),
        ({"schema_registry": "localhost:8081"}, "must be an http:// or https:// URL"),
        ({"out_kafka": f"{K}/o", "snapshot_interval": "30s"}, "transaction.timeout.ms"),
        ({"kafka_config": ["schema.registry.url=http://x"]}, "use --schema-registry"),
        ({"kafka_config": ["bootstrap.servers=h:1"]}, "the brokers come from the kafka://"),
        ({"until_end": "maybe"}, "--until-end must be true or false"),
    ],
)
def test_bad_kafka_settings_get_one_line_errors(values: dict[str, object], says: str | None
                                                ) -> None:
    if says is None:  # a prefix whose topics differ from the inputs' is fine
        assert config(**values).kafka.output_url("joined") is not None
        return
    with pytest.raises(ConfigError) as info:
        config(**values)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_until_end_is_for_kafka_inputs(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text("")
    with pytest.raises(ConfigError, match="--until-end is for Kafka inputs"):
        build_config({"left": str(tmp_path / "a.jsonl"), "right": str(tmp_path / "b.jsonl"),
                      "out": "o", "until_end": True}, None, {})


def test_a_reader_schema_is_for_confluent_avro_topics(tmp_path: Path) -> None:
    schema = tmp_path / "s.avsc"
    schema.write_text('{"type": "record", "name": "r", "fields": []}')
    with pytest.raises(ConfigError, match="a reader schema for Confluent Avro values"):
        config(left_schema=str(schema))
    schema.write_text('{"type": "nonsense"}')
    with pytest.raises(ConfigError, match="not a valid Avro schema"):
        config(left_schema=str(schema), left_format="avro", schema_registry="http://r:1")


def test_outputs_to_a_prefix_or_one_topic_each() -> None:
    cfg = config(out_kafka=f"{K}/run7", out_late=f"{K}/late-events")
    topics = {k: str(cfg.kafka.output_url(k)) for k in ("joined", "late", "invalid")}
    assert topics == {"joined": f"{K}/run7.joined", "late": f"{K}/late-events",
                      "invalid": f"{K}/run7.invalid"}
    only = config(out_joined=f"{K}/pairs")
    assert only.kafka.output_url("late") is None  # stays a file under --out


def test_kafka_settings_file_table_then_env_then_flags_key_by_key(tmp_path: Path) -> None:
    file = tmp_path / "join.toml"
    file.write_text('[kafka]\n"security.protocol" = "SASL_SSL"\n"sasl.password" = "from-file"\n'
                    '"linger.ms" = 5\n')
    env = {"STREAMJOIN_KAFKA_CONFIG": "linger.ms=7\nclient.id=env"}
    cfg = config(env, str(file), kafka_config=["client.id=flag"])
    # A flag beats the environment as a whole (the usual order) ...
    assert cfg.kafka.settings.values == {"security.protocol": "SASL_SSL",
                                         "sasl.password": "from-file", "linger.ms": "5",
                                         "client.id": "flag"}
    # ... and both beat the file's table key by key.
    cfg = config(env, str(file))
    assert cfg.kafka.settings.values["linger.ms"] == "7"
    assert cfg.kafka.settings.values["sasl.password"] == "from-file"


def test_secrets_never_reach_print_config_the_written_config_or_run_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "join.toml"
    file.write_text('[kafka]\n"sasl.password" = "hunter2"\n'
                    '"schema.registry.basic.auth.user.info" = "u:hunter3"\n')
    code = main(["run", "--config", str(file), "--left", f"{K}/imp", "--right", f"{K}/plays",
                 "--out", str(tmp_path / "o"), "--kafka-config", "sasl.username=alice",
                 "--print-config"])
    shown = capsys.readouterr().out
    assert code == 0
    assert "hunter" not in shown
    assert "'sasl.password' = \"***\"" in shown
    assert "'sasl.username' = \"alice\"" in shown
    assert "# flag --kafka-config" in shown
    resolved, _ = resolve({**BASE, "kafka_config": ["sasl.password=hunter2"]}, None, {})
    cfg = config(kafka_config=["sasl.password=hunter2"])
    assert "hunter2" not in format_settings(effective_settings(resolved, cfg))
    assert "hunter2" not in json.dumps(cfg.to_json())
    assert "hunter2" in cfg.kafka.settings.values["sasl.password"]  # the run itself has it


def test_workers_get_the_secrets_through_their_environment() -> None:
    cfg = config(kafka_config=["sasl.password=hunter2", "linger.ms=5"])
    written = RunConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert written.kafka.settings.values["sasl.password"] == "***"
    env = secrets_env(cfg.kafka)
    assert json.loads(env[SECRETS_ENV]) == {"sasl.password": "hunter2"}
    assert with_secrets(written.kafka, env) == cfg.kafka
    with pytest.raises(ConfigError, match=r"sasl\.password are secret and were not handed"):
        with_secrets(written.kafka, {})


def test_registry_client_settings_are_split_off() -> None:
    cfg = config(kafka_config=["schema.registry.basic.auth.user.info=u:p", "acks=all"])
    assert cfg.kafka.registry_conf() == {"basic.auth.user.info": "u:p"}
    assert cfg.kafka.client_settings().values == {"acks": "all"}
