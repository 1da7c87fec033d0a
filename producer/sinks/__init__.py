"""Where a cycle's encoded records go: the ``Sink`` protocol the cycle loop talks to, and the
standard-output sink. The Kafka sink, which implements the same protocol, is ``producer.kafka``.
"""
