"""What a rollout must never do to a running simulation, checked from the outside: from every
record on the topic (read from its beginning by a background consumer) and from every change of
the producer pods (a watch, in the API server's order). Also the reference data the rollout
test edits, and how to tell apart the records of two simulations of one name on one topic.

Each check returns the problems it found (empty = none), so a test can assert on it and print
what went wrong."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from domain.partitioning import shard_range
from testbed.polling import wait_until
from testbed.watching import Change, Watch

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
STREAM_HASH = "sensorsim.io/stream-hash"
# The producer settings that decide what a machine emits (DESIGN-17, "which settings shape the
# stream"): pods that differ in any of them must never run at the same time.
STREAM_SHAPING = (
    "NUM_MACHINES",
    "SHARD_COUNT",
    "SIMULATION_NAME",
    "SIMULATION_SEED",
    "SIMULATION_EPOCH",
    "SIMULATION_UID",
    "SIMULATION_MODEL",
    "SIMULATION_PERSISTENCE",
    "SIMULATION_INTERVAL_MS",
    "NUM_SENSORS",
    "SENSOR_DATA_FILE",
    "FAILURE_PROBABILITY",
    "FAILURE_MIN_CYCLES",
    "FAILURE_MAX_CYCLES",
    "FAILURE_RAMP_CYCLES",
    "KAFKA_TOPIC",
    "KAFKA_STATE_TOPIC",
)


# --- the records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One record of one machine: its ``seq`` header, the due time of its cycle (the body's
    timestamp, ms), whether it is failing, its readings (by sensor name order) and the
    ``skipped_cycles`` header (0 when absent)."""

    seq: int
    due_ms: int
    failing: bool
    values: tuple[float, ...]
    skipped: int


def parse(value: bytes, headers: Sequence[tuple[str, bytes]]) -> tuple[str, Reading]:
    body = json.loads(value)
    found = dict(headers)
    seq = int(found["seq"])
    assert body.get("seq", seq) == seq, body  # the extended body carries it too
    readings = body["readings"]
    due = datetime.fromisoformat(body["timestamp"])
    return body["machine_id"], Reading(
        seq=seq,
        due_ms=round(due.timestamp() * 1000),
        failing=bool(readings["has_failure"]),
        values=tuple(readings["readings"][k] for k in sorted(readings["readings"])),
        skipped=int(found.get("skipped_cycles", b"0")),
    )


class TopicRecorder:
    """Every record of ``topic`` from its beginning, by machine in offset order, read by a
    background thread from ``start()`` to ``stop()``."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer.assign(assigned)
        self._consumer.seek_to_beginning(*assigned)
        self._records: dict[str, list[Reading]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="topic-recorder", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> TopicRecorder:
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                for batch in self._consumer.poll(timeout_ms=300).values():
                    parsed = [parse(r.value, r.headers) for r in batch]
                    with self._lock:
                        for machine, reading in parsed:
                            self._records[machine].append(reading)
        except BaseException as error:  # reported by every later wait
            self.error = error
        finally:
            self._consumer.close()

    def snapshot(self) -> dict[str, list[Reading]]:
        assert self.error is None, f"the topic recorder stopped: {self.error!r}"
        with self._lock:
            return {machine: list(records) for machine, records in self._records.items()}

    def wait_until_due(
        self,
        machines: Iterable[str],
        due_ms: float,
        timeout: float = 180,
        broken: Callable[[], object] = lambda: None,
    ) -> dict[str, list[Reading]]:
        """The records once each of ``machines`` has one of a cycle due at ``due_ms`` or later.
        Fails at once when ``broken()`` returns something (what it returns is the message)."""
        wanted = set(machines)

        def outcome() -> tuple[str, Any] | None:
            problem = broken()
            if problem:
                return "broken", problem
            records = self.snapshot()
            if all(any(r.due_ms >= due_ms for r in records.get(m, ())) for m in wanted):
                return "ok", records
            return None

        found, value = wait_until(
            outcome,
            timeout=timeout,
            message=f"records due at {due_ms:.0f} of {sorted(wanted)}",
            interval=0.5,
        )
        if found == "broken":
            raise AssertionError(value)
        records: dict[str, list[Reading]] = value
        return records

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- reference data ------------------------------------------------------------------------


def reference_csv(offset: float) -> str:
    """A small reference file: 4 sensors around ``10 + offset`` and two failure types."""
    rng = np.random.default_rng(5)
    lines = ["Sensor 1,Sensor 2,Sensor 3,Sensor 4,Label"]
    for label, rows, shift in (("", 200, 0.0), ("bearing", 30, 3.0), ("overheat", 30, -3.0)):
        values = rng.normal(10.0 + offset, 1.0, size=(rows, 4))
        values[:, 0 if label == "bearing" else 1] += shift
        lines += [",".join(f"{v:.4f}" for v in row) + f",{label}" for row in values]
    return "\n".join(lines) + "\n"


def reference_config_map(name: str, namespace: str, offset: float) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"data.csv": reference_csv(offset)},
    }


# --- checks on the records ------------------------------------------------------------------


def sequence_problems(
    records: Mapping[str, Sequence[Reading]], first_seq: Mapping[str, int]
) -> list[str]:
    """Per machine, the ``seq`` of its records in topic order must be ``first_seq[m]``,
    ``first_seq[m] + 1``, ... with no gap, no duplicate, no step back (a machine emitted by two
    pods repeats sequence numbers; a lost cycle is a gap)."""
    problems = []
    for machine, start in sorted(first_seq.items()):
        seqs = [r.seq for r in records.get(machine, ())]
        expected = list(range(start, start + len(seqs)))
        if seqs == expected:
            continue
        at = next(i for i, (a, b) in enumerate(zip(seqs, expected, strict=True)) if a != b)
        duplicates = len(seqs) - len(set(seqs))
        problems.append(
            f"{machine}: expected seq {expected[at]} at record {at}, got {seqs[at]} "
            f"(around: {seqs[max(0, at - 3) : at + 4]}; {duplicates} duplicates, "
            f"{len(seqs)} records {seqs[0]}..{seqs[-1]})"
        )
    return problems


def schedule_problems(records: Mapping[str, Sequence[Reading]]) -> list[str]:
    """Every machine follows one schedule: a cycle's due time is the same for every machine and
    record, and it grows with the cycle (timestamps monotone per machine)."""
    due_of: dict[int, tuple[int, str]] = {}
    problems = []
    for machine, stream in sorted(records.items()):
        for before, after in itertools.pairwise(stream):
            if after.seq > before.seq and after.due_ms <= before.due_ms:
                problems.append(
                    f"{machine}: seq {after.seq} due {after.due_ms} not after seq {before.seq} "
                    f"due {before.due_ms}"
                )
        for reading in stream:
            known = due_of.setdefault(reading.seq, (reading.due_ms, machine))
            if known[0] != reading.due_ms:
                problems.append(
                    f"seq {reading.seq}: due {reading.due_ms} on {machine}, {known[0]} on "
                    f"{known[1]}"
                )
    return problems[:20]


def between(
    records: Mapping[str, Sequence[Reading]], since_ms: float, until_ms: float = math.inf
) -> dict[str, list[Reading]]:
    """Each machine's records of cycles due in [since_ms, until_ms)."""
    return {m: [r for r in s if since_ms <= r.due_ms < until_ms] for m, s in records.items()}


def failing_share(records: Mapping[str, Sequence[Reading]]) -> tuple[float, int]:
    """The share of failing records, and how many records it is of."""
    flags = [r.failing for stream in records.values() for r in stream]
    return (sum(flags) / len(flags) if flags else 0.0), len(flags)


def spacings(records: Mapping[str, Sequence[Reading]]) -> set[int]:
    """The due-time steps (ms) between consecutive cycles of the same machine."""
    return {
        b.due_ms - a.due_ms
        for stream in records.values()
        for a, b in itertools.pairwise(stream)
        if b.seq == a.seq + 1
    }


def lag1_autocorrelation(records: Mapping[str, Sequence[Reading]]) -> float:
    """Mean over machines and sensors of the lag-1 autocorrelation of consecutive readings."""
    found = []
    for stream in records.values():
        if len(stream) < 10:
            continue
        for sensor in range(len(stream[0].values)):
            series = [r.values[sensor] for r in stream]
            a, b = series[:-1], series[1:]
            if statistics.pstdev(a) > 0 and statistics.pstdev(b) > 0:
                found.append(statistics.correlation(a, b))
    assert found, "no series long enough"
    return statistics.fmean(found)


def value_range(records: Mapping[str, Sequence[Reading]]) -> tuple[float, float]:
    values = [v for stream in records.values() for r in stream for v in r.values]
    assert values, "no readings"
    return min(values), max(values)


def split_by_age(
    records: Mapping[str, Sequence[Reading]], older: Mapping[str, Sequence[Reading]]
) -> tuple[dict[str, list[Reading]], dict[str, list[Reading]]]:
    """Records of the same machine ids from two simulations of one name on one topic: those
    beyond ``older`` (a snapshot taken before the younger existed) split by seq into the older
    simulation's (at least half its last seq) and the younger's (below it)."""
    old: dict[str, list[Reading]] = {}
    young: dict[str, list[Reading]] = {}
    for machine, stream in records.items():
        known = len(older.get(machine, ()))
        last = older[machine][-1].seq if known else 0
        assert last >= 100, f"{machine}: the older simulation is too young to tell apart ({last})"
        old[machine] = list(stream[:known]) + [r for r in stream[known:] if r.seq >= last // 2]
        young[machine] = [r for r in stream[known:] if r.seq < last // 2]
    return old, young


def quiet_snapshot(recorder: TopicRecorder, quiet: float = 2.0) -> dict[str, list[Reading]]:
    """The recorded records once no new one has arrived for ``quiet`` seconds."""

    def count(records: Mapping[str, Sequence[Reading]]) -> int:
        return sum(len(s) for s in records.values())

    records = recorder.snapshot()
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = recorder.snapshot()
        if count(now) != count(records):
            records, since = now, time.monotonic()
    return records


# --- checks on the pods -----------------------------------------------------------------------


def pod_env(pod: Mapping[str, Any]) -> dict[str, str]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", ())}


def owned_machines(pod: Mapping[str, Any]) -> range:
    """The machine indices a producer pod emits, from its own env and pod-index label."""
    env = pod_env(pod)
    index = int(pod["metadata"]["labels"][POD_INDEX_LABEL])
    return shard_range(int(env["NUM_MACHINES"]), int(env["SHARD_COUNT"]), index).indices()


def restart_problems(changes: Sequence[Change]) -> list[str]:
    """Every pod state that shows a producer that exited: a restart, a last terminated state,
    a waiting reason other than creation (CrashLoopBackOff, CreateContainerConfigError...)."""
    problems: dict[tuple[str, str], str] = {}
    for change in changes:
        meta = change.object["metadata"]
        for status in change.object.get("status", {}).get("containerStatuses", ()):
            waiting = (status.get("state") or {}).get("waiting") or {}
            terminated = (status.get("lastState") or {}).get("terminated")
            reason = waiting.get("reason", "")
            if (
                status.get("restartCount", 0)
                or terminated
                or reason not in ("", "ContainerCreating")
            ):
                key = (meta["uid"], reason or "restarted")
                problems.setdefault(
                    key,
                    f"{meta['name']} ({meta['uid'][:8]}): {reason or 'restarted'}, "
                    f"restarts {status.get('restartCount')}, last terminated {terminated}",
                )
    return list(problems.values())


def alive_pods(changes: Sequence[Change]) -> Iterator[tuple[Change, list[Mapping[str, Any]]]]:
    """Each change with the pods that existed (running or terminating) right after it."""
    alive: dict[str, Mapping[str, Any]] = {}
    for change in changes:
        uid = change.object["metadata"]["uid"]
        if change.type == "DELETED":
            alive.pop(uid, None)
        else:
            alive[uid] = change.object
        yield change, list(alive.values())


def double_owner_problems(changes: Sequence[Change]) -> list[str]:
    """Moments, in the API server's order, when two existing pods (running or terminating)
    owned the same machine."""
    problems = []
    for change, pods in alive_pods(changes):
        owners: dict[int, list[str]] = defaultdict(list)
        for pod in pods:
            for machine in owned_machines(pod):
                owners[machine].append(pod["metadata"]["name"])
        doubled = {m: names for m, names in owners.items() if len(names) > 1}
        if doubled:
            name = change.object["metadata"]["name"]
            problems.append(f"{change.type} {name}: machines owned twice {doubled}")
    return problems


def mixed_settings_problems(changes: Sequence[Change]) -> list[str]:
    """Moments when pods with different stream-shaping settings existed at once (a change that
    shapes the stream is stop-before-start)."""
    problems = []
    for change, pods in alive_pods(changes):
        # The operator's mark of the same (sensorsim.io/stream-hash) counts as one more setting.
        envs = [
            pod_env(pod)
            | {STREAM_HASH: pod["metadata"].get("annotations", {}).get(STREAM_HASH, "")}
            for pod in pods
        ]
        differing = [
            s for s in (*STREAM_SHAPING, STREAM_HASH) if len({env.get(s, "") for env in envs}) > 1
        ]
        if differing:
            names = sorted(pod["metadata"]["name"] for pod in pods)
            problems.append(
                f"{change.type} {change.object['metadata']['name']}: pods {names} exist at "
                f"once with different {differing}"
            )
    return problems


def layout(pod: Mapping[str, Any]) -> str:
    """A producer pod's ``SHARD_COUNT``."""
    return pod_env(pod).get("SHARD_COUNT", "")


def mid_handover(pods: Watch, old_shards: int, since: float) -> None:
    """Wait for the watch to show a pod of the old layout (``old_shards``) being deleted after
    ``since`` (time.time()): the handover has begun and the old pods are stopping."""

    def stopping() -> bool:
        return any(
            c.arrived > since
            and "deletionTimestamp" in c.object["metadata"]
            and layout(c.object) == str(old_shards)
            for c in pods.snapshot()
        )

    wait_until(stopping, timeout=60, message=f"a pod of the {old_shards}-shard layout to stop")


def old_pods_gone_after(changes: Sequence[Change], moment: float, old_shards: int) -> list[str]:
    """Pods of the old layout whose deletion the watch saw after ``moment`` (time.time())."""
    return [
        c.object["metadata"]["name"]
        for c in changes
        if c.type == "DELETED" and c.arrived > moment and layout(c.object) == str(old_shards)
    ]
