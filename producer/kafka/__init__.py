"""Everything that talks to Kafka for the record stream, one job per module:
``client_config`` (every Kafka client's keyword arguments), ``connection`` (the first client,
and one clear error when the broker, the credentials or the topic are wrong), ``topics`` (topic
administration, shared with the continuity state topic) and ``topic_rules`` (whether a topic
fits the stream), ``sending`` (metadata, partitions, headers, backpressure), ``batches`` (whole
record batches), ``supervision`` (the current client and its replacement), ``delivery_ledger``
(exact counts across clients), ``delivery_audit`` (what a replaced client really wrote), and
``sink``, which puts them together behind the ``Sink`` protocol.

Imports ``kafka`` at module level: the package is imported only when the run uses Kafka. The
kafka-python internals it relies on are confined to ``client_internals`` and ``batches``.
"""
