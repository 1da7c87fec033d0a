"""Offline looks at the model: what is learned from a file (``profile``) and how closely a
simulated stream follows it (``fidelity``, with optional plots). Runs the engine in memory;
never touches Kafka or the runtime.
"""
