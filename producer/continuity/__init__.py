"""A machine's stream belongs to the simulation, not to a process: the fixed cycle schedule,
periodic checkpoints of every machine's state, the compacted state topic that holds them, and
the byte codec of its records. Restores the engine on start and catches up missed cycles.

Imports the simulation (to snapshot and restore engine state) and ``producer.kafka`` (for the
shared client and topic configuration); never the runtime or the CLI.
"""
