"""The producer pods' environment: every producer setting the spec decides, by variable.

Names and value formats are the settings contract's (``domain/settings_contract.py``): the
producer reads exactly what is written here.
"""

from __future__ import annotations

import json
from typing import Final

from domain import settings_contract as contract
from domain.reference_columns import DEFAULT_LABEL_COLUMN, split_list
from domain.scenarios import canonical
from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.children.grace_period import (
    catch_up_max_cycles,
    termination_grace_seconds,
)
from sensorsim_operator.children.identity import Manifest, SimulationRef

REFERENCE_DATA_DIR: Final = "/etc/sensorsim/reference-data"
KAFKA_CA_DIR: Final = "/etc/sensorsim/kafka-ca"
KAFKA_CA_FILE: Final = "ca.crt"
KAFKA_CLIENT_CERT_DIR: Final = "/etc/sensorsim/kafka-client"
KAFKA_CLIENT_CERT_FILE: Final = "user.crt"
KAFKA_CLIENT_KEY_FILE: Final = "user.key"


def sensor_count(spec: SimulationSpec) -> int:
    """The sensors per machine: SENSOR_COLUMNS decides them when set (NUM_SENSORS must then
    agree with it), else ``spec.sensors``."""
    data = spec.reference_data
    if data is None or data.sensor_columns is None:
        return spec.sensors
    return len(split_list(data.sensor_columns))


def producer_settings(simulation: SimulationRef, spec: SimulationSpec) -> dict[str, str]:
    """Every producer setting with a literal value, by environment variable; names and value
    formats are the contract's (``domain.settings_contract``).

    ``SHARD_INDEX`` is absent on purpose: each pod reads its own from the pod-index label.
    Credentials are absent too (but a SASL username given as a literal): pods read them from
    the user's Secret (see ``producer_env``).
    """
    kafka, failures, data = spec.kafka, spec.failures, spec.reference_data
    sensor_columns = None if data is None else data.sensor_columns
    client_cert = None if kafka.tls is None else kafka.tls.client_certificate_secret
    grace = termination_grace_seconds(spec.machines, spec.replicas)
    values: dict[str, object | None] = {
        "SIMULATION_NAME": simulation.name,
        # A simulation deleted and created again under the same name is another simulation.
        "SIMULATION_UID": simulation.uid,
        # Cycle 0 is due when the resource was created, whichever pod starts first (and after
        # a lost state topic the schedule is still the resource's): docs/continuity.md.
        "SIMULATION_EPOCH": simulation.created,
        "NUM_MACHINES": spec.machines,
        "SHARD_COUNT": spec.replicas,
        # SENSOR_COLUMNS decides the sensors; NUM_SENSORS must then agree with it
        "NUM_SENSORS": sensor_count(spec),
        "SIMULATION_INTERVAL_MS": spec.interval_ms,
        "SIMULATION_SEED": spec.seed,
        "SIMULATION_MODEL": spec.model,
        "SIMULATION_PERSISTENCE": spec.persistence,
        "SIMULATION_REGIMES": spec.regimes,
        "SENSOR_DATA_FILE": (
            None
            if spec.reference_data is None
            else f"{REFERENCE_DATA_DIR}/{spec.reference_data.key}"
        ),
        "SENSOR_COLUMNS": sensor_columns,
        # the default is not written: a table without a Label column is then all normal
        "LABEL_COLUMN": (
            None if data is None or data.label_column == DEFAULT_LABEL_COLUMN else data.label_column
        ),
        "NORMAL_LABELS": None if data is None or not data.normal_labels else data.normal_labels,
        "TIME_COLUMN": None if data is None else data.time_column,
        "GROUP_COLUMN": None if data is None else data.group_column,
        "FAILURE_PROBABILITY": failures.probability,
        "FAILURE_SHARE": failures.share,
        "FAILURE_MIN_CYCLES": failures.min_cycles,
        "FAILURE_MAX_CYCLES": failures.max_cycles,
        "FAILURE_RAMP_CYCLES": failures.ramp_cycles,
        # the scenario list as the producer reads it (the same camelCase document)
        "SCENARIOS": (
            json.dumps(canonical(spec.scenarios), separators=(",", ":")) if spec.scenarios else None
        ),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "KAFKA_COMPRESSION_TYPE": kafka.compression,
        "KAFKA_CREATE_TOPIC": kafka.create_topic,
        "KAFKA_TOPIC_PARTITIONS": kafka.partitions,
        "KAFKA_SASL_MECHANISM": None if kafka.sasl is None else kafka.sasl.mechanism,
        "KAFKA_SSL_CAFILE": (
            f"{KAFKA_CA_DIR}/{KAFKA_CA_FILE}"
            if kafka.tls is not None and kafka.tls.ca_secret is not None
            else None
        ),
        "KAFKA_SSL_CERTFILE": (
            None if client_cert is None else f"{KAFKA_CLIENT_CERT_DIR}/{KAFKA_CLIENT_CERT_FILE}"
        ),
        "KAFKA_SSL_KEYFILE": (
            None if client_cert is None else f"{KAFKA_CLIENT_CERT_DIR}/{KAFKA_CLIENT_KEY_FILE}"
        ),
        "KAFKA_SASL_USERNAME": None if kafka.sasl is None else kafka.sasl.username,
        "KAFKA_LINGER_MS": kafka.producer.linger_ms,
        "KAFKA_BATCH_SIZE": kafka.producer.batch_size,
        "KAFKA_MAX_PENDING_RECORDS": kafka.producer.max_pending_records,
        "DELIVERY_GUARANTEE": kafka.delivery_guarantee,
        "MESSAGE_FORMAT": spec.message_format,
        "HTTP_PORT": names.HTTP_PORT,
        "LOG_LEVEL": spec.log_level,
        "LOG_FORMAT": "json",
        # The pod's terminationGracePeriodSeconds: the producer's shutdown budget.
        "SHUTDOWN_GRACE_SECONDS": grace,
        # A handover's pause is caught up, not skipped.
        "CATCH_UP_MAX_CYCLES": catch_up_max_cycles(spec.interval_ms, grace),
    }
    return {
        env: contract.setting(env).render(value)
        for env, value in values.items()
        if value is not None
    }


def producer_env(simulation: SimulationRef, spec: SimulationSpec) -> list[Manifest]:
    """The container's ``env``: the settings as literals, the shard index from the pod-index
    label and the SASL credentials from the user's Secret."""
    env: list[Manifest] = [
        {"name": key, "value": value} for key, value in producer_settings(simulation, spec).items()
    ]
    env.append(
        {
            "name": contract.setting("SHARD_INDEX").env,
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.labels['{names.POD_INDEX_LABEL}']",
                }
            },
        }
    )
    env += _credentials_env(spec)
    return env


def _credentials_env(spec: SimulationSpec) -> list[Manifest]:
    """The SASL credentials as ``secretKeyRef`` variables: the JAAS line when the Secret's key
    for it is named, else the password and (unless given as a literal) the username. They stay
    in the user's Secret: the operator only references them."""
    sasl = spec.kafka.sasl
    if sasl is None:
        return []
    secret = sasl.credentials_secret
    if secret.jaas_config_key is not None:
        refs = [("KAFKA_SASL_JAAS_CONFIG", secret.jaas_config_key)]
    else:
        refs = [("KAFKA_SASL_PASSWORD", secret.password_key)]
        if sasl.username is None:
            refs.insert(0, ("KAFKA_SASL_USERNAME", secret.username_key))
    return [
        {
            "name": contract.setting(variable).env,
            "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}},
        }
        for variable, key in refs
    ]
