"""`helm test` check: records in sensorsim's wire format reach the configured Kafka topic.

Run by the chart's test pod as `python -c <this file>` in the sensorsim image (kafka-python is
one of its dependencies). It reads the topic from the earliest offset, without a consumer group
(so it commits nothing and disturbs no one), and exits 0 once TEST_MIN_RECORDS records whose
bodies have the wire format's keys and types have arrived, or 1 after TEST_TIMEOUT_SECONDS.

Environment:
    TEST_BOOTSTRAP_SERVERS  comma-separated host:port list (required)
    TEST_TOPIC              topic to read (required)
    TEST_MIN_RECORDS        records needed for success (default 10)
    TEST_TIMEOUT_SECONDS    how long to wait for them (default 180)
    KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD,
    KAFKA_SSL_CAFILE        the producer's names for the client security settings (optional)
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer


def _is_iso_timestamp(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def wire_format_error(body: Any) -> str | None:
    """Return why `body` is not a reading in the default wire format, or None if it is one."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    missing = {"machine_id", "timestamp", "readings"} - body.keys()
    if missing:
        return f"missing keys {sorted(missing)}"
    outer = body["readings"]
    inner = outer.get("readings") if isinstance(outer, dict) else None
    checks = (
        (isinstance(body["machine_id"], str) and body["machine_id"] != "", "machine_id is empty"),
        (_is_iso_timestamp(body["timestamp"]), f"timestamp {body['timestamp']!r} is not ISO-8601"),
        (
            isinstance(outer, dict) and isinstance(outer.get("has_failure"), bool),
            "readings.has_failure is not a boolean",
        ),
        (isinstance(inner, dict) and bool(inner), "readings.readings is not a non-empty object"),
        (
            isinstance(inner, dict)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in inner.values()),
            "a sensor reading is not a number",
        ),
    )
    return next((problem for ok, problem in checks if not ok), None)


def client_settings(environ: dict[str, str]) -> dict[str, Any]:
    """kafka-python security settings from the producer's environment variable names."""
    settings: dict[str, Any] = {
        "security_protocol": environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
    }
    optional = {
        "KAFKA_SASL_MECHANISM": "sasl_mechanism",
        "KAFKA_SASL_USERNAME": "sasl_plain_username",
        "KAFKA_SASL_PASSWORD": "sasl_plain_password",
        "KAFKA_SSL_CAFILE": "ssl_cafile",
    }
    for variable, setting in optional.items():
        if environ.get(variable):
            settings[setting] = environ[variable]
    return settings


def main() -> int:
    """Read the topic until enough valid records arrived or the time is up."""
    environ = dict(os.environ)
    bootstrap = environ["TEST_BOOTSTRAP_SERVERS"].split(",")
    topic = environ["TEST_TOPIC"]
    wanted = int(environ.get("TEST_MIN_RECORDS", "10"))
    deadline = time.monotonic() + float(environ.get("TEST_TIMEOUT_SECONDS", "180"))
    print(f"reading {wanted} records from topic {topic!r} at {','.join(bootstrap)}", flush=True)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        # Notice the topic soon when the producers create it after the test started.
        metadata_max_age_ms=5000,
        **client_settings(environ),
    )
    valid = 0
    try:
        while valid < wanted and time.monotonic() < deadline:
            for record in consumer:
                try:
                    body = json.loads(record.value)
                except ValueError as error:
                    print(f"FAIL: offset {record.offset}: not JSON: {error}", flush=True)
                    return 1
                problem = wire_format_error(body)
                if problem is not None:
                    print(f"FAIL: offset {record.offset}: {problem}: {body!r}", flush=True)
                    return 1
                valid += 1
                if valid >= wanted or time.monotonic() >= deadline:
                    break
    finally:
        consumer.close()
    if valid < wanted:
        print(f"FAIL: only {valid} of {wanted} records arrived on {topic!r} in time", flush=True)
        return 1
    print(f"OK: {valid} records in the wire format on {topic!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
