"""Everything that talks to Kafka for the record stream: client configuration, connecting and
diagnosing the broker, topic administration and checks, whole record batches, supervision and
replacement of the client, and the audit of what a replaced client really delivered.

The only package besides ``continuity.state_topic`` that imports ``kafka``; the kafka-python
internals it relies on are confined to ``client_internals`` and ``batches``.
"""
