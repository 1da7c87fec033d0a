"""The simulation: what is learned from the reference table and how machines evolve in time.

Pure computation over numpy arrays (machines x sensors): reading the reference table is its
only I/O. It imports nothing of Kafka, HTTP, metrics or the runtime; the engine knows neither
where its readings go nor how they are encoded.
"""
