"""``kafka://`` URLs and librdkafka settings: parsing, one-line errors, secrets."""

from __future__ import annotations

import pytest

from dataflows.errors import ConfigError
from dataflows.kafka import KafkaSettings, make_consumer, make_producer, parse_kafka_url
from dataflows.kafka.urls import is_kafka_url, output_topics


def test_url_with_several_brokers() -> None:
    url = parse_kafka_url("kafka://b1:9092, b2.example.com:19092,[::1]:9093/impressions.v1")
    assert url.brokers == ("b1:9092", "b2.example.com:19092", "[::1]:9093")
    assert url.topic == "impressions.v1"
    assert url.bootstrap == "b1:9092,b2.example.com:19092,[::1]:9093"
    assert str(url) == "kafka://b1:9092,b2.example.com:19092,[::1]:9093/impressions.v1"
    assert is_kafka_url("KAFKA://x:1/t")
    assert not is_kafka_url("data/impressions.jsonl")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kafka:impressions.jsonl", "is not a Kafka URL"),
        ("kafka:///topic", "names no broker"),
        ("kafka://host:9092", "names no topic"),
        ("kafka://host:9092/", "names no topic"),
        ("kafka://host/topic", "needs HOST:PORT"),
        ("kafka://host:0/topic", "port '0' must be a number from 1 to 65535"),
        ("kafka://host:99999/topic", "from 1 to 65535"),
        ("kafka://host:x/topic", "port 'x'"),
        ("kafka://ho st:1/topic", "not a host name"),
        ("kafka://host:1/a/b", "one topic only"),
        ("kafka://host:1/bad topic", "not a legal Kafka topic name"),
        ("kafka://host:1/..", "not a legal Kafka topic name"),
        ("kafka://host:1/" + "t" * 250, "not a legal Kafka topic name"),
        ("kafka://user:pw@host:1/t", "no user, query or fragment"),
        ("kafka://host:1/t?acks=all", "--kafka-config"),
    ],
)
def test_bad_urls_get_one_line_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="Kafka URL") as info:
        parse_kafka_url(text)
    message = str(info.value)
    assert says in message
    assert "\n" not in message


def test_output_topics_under_a_prefix() -> None:
    topics = output_topics(parse_kafka_url("kafka://h:1/run7"))
    assert {k: u.topic for k, u in topics.items()} == {
        "joined": "run7.joined", "late": "run7.late", "invalid": "run7.invalid"}
    with pytest.raises(ConfigError, match="too long"):
        output_topics(parse_kafka_url("kafka://h:1/" + "p" * 245))


def test_settings_from_pairs_and_section_flags_win() -> None:
    section = KafkaSettings.from_section({"security.protocol": "SSL", "linger.ms": 5,
                                          "enable.ssl.certificate.verification": False})
    assert section.values == {"security.protocol": "SSL", "linger.ms": "5",
                              "enable.ssl.certificate.verification": "false"}
    flags = KafkaSettings.from_pairs(["linger.ms=50", "sasl.password=a=b"])
    merged = section.merged(flags)
    assert merged.values["linger.ms"] == "50"
    assert merged.values["sasl.password"] == "a=b"  # split at the first '='
    assert merged.client_config("h:1", acks="all")["bootstrap.servers"] == "h:1"


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        (["novalue"], "must be KEY=VALUE"),
        (["=x"], "must be KEY=VALUE"),
        (["Bad Key=1"], "not a librdkafka property name"),
        (["bootstrap.servers=h:1"], "the brokers come from the kafka://"),
        (["transactional.id=x"], "one per output shard"),
        (["enable.auto.commit=true"], "keeps offsets in its snapshots"),
    ],
)
def test_bad_settings_are_refused(pairs: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        KafkaSettings.from_pairs(pairs)


def test_secrets_never_shown() -> None:
    settings = KafkaSettings.from_pairs([
        "sasl.username=alice", "sasl.password=hunter2", "ssl.key.password=k3y",
        "sasl.oauthbearer.client.secret=s3cr3t", "ssl.key.pem=PEMDATA",
        "basic.auth.user.info=u:p4ss", "sasl.jaas.config=JAAS",
    ])
    shown = repr(settings) + str(settings.redacted())
    for secret in ("hunter2", "k3y", "s3cr3t", "PEMDATA", "u:p4ss", "JAAS"):
        assert secret not in shown
    assert "alice" in shown
    with pytest.raises(ConfigError) as info:
        KafkaSettings.from_pairs(["sasl.password"])  # no '=': the message echoes the pair
    assert "sasl.password" in str(info.value)


def test_unknown_property_is_a_config_error_naming_it_without_secrets() -> None:
    settings = KafkaSettings.from_pairs(["no.such.property=1", "sasl.password=hunter2"])
    for make in (make_consumer, make_producer):
        with pytest.raises(ConfigError, match=r"no\.such\.property") as info:
            make(settings, "127.0.0.1:1")
        assert "hunter2" not in str(info.value)
        assert "--kafka-config" in str(info.value)
