"""The data plane: simulate a shard of a fleet and publish its readings.

Read top-down, the packages follow the data path: ``settings`` (what the user asked for) →
``simulation`` (reference data, the learned and original models, the numpy engine) →
``serialisation`` (a cycle's message bodies as bytes) → ``sinks`` / ``kafka`` (where the
records go). Beside the path: ``continuity`` (the schedule and the checkpoints that make a
machine's stream outlive a process), ``runtime`` (signals, heartbeat, HTTP probes, metrics,
logging) and ``analysis`` (the ``profile`` and ``fidelity`` commands). ``shard`` is this
process's part of the fleet (engine and encoder); ``app`` runs the cycle loop over the parts it
is given; ``assembly`` builds them from settings; ``cli`` parses the command line.
"""

from producer.runtime.kernels import use_portable_kernels

# before anything imports numpy: the same fitted model on every x86-64 node (see the module)
use_portable_kernels()
