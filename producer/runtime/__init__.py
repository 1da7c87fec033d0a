"""The process around the cycle loop: stop requests from signals, the liveness heartbeat, the
HTTP port for probes and metrics, Prometheus metrics and log formatting.

Knows nothing of the simulation; reads delivery counters through the ``sinks`` protocol.
"""
