"""A machine's stream belongs to the simulation, not to a process (docs/continuity.md):
``schedule`` (when each cycle is due), ``catch_up`` (bringing restored machines onto one
cycle), ``fingerprint`` (the configuration a simulation was written under), ``codec``, ``snapshot``
and ``state_topic`` (the records of the compacted state topic), ``adoption`` and ``legacy``
(joining a simulation, also one written without SIMULATION_UID), ``position`` (where a shard's
machines are), ``restoration`` (restores the engine on start), ``checkpoints`` (the periodic,
final and exactly-once checkpoints) and ``coordinator`` (joins them: restores, catches up
missed cycles and checkpoints every machine's state).

Imports the simulation (to snapshot and restore engine state) and ``producer.kafka`` (for the
shared client and topic configuration); never the runtime or the CLI.
"""
