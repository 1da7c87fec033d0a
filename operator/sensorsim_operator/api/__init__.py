"""The SensorSimulation API types (``sensorsim.io/v1alpha1``), the source of the CRD's schema.

``v1alpha1.py`` holds the resource's identity and its top-level spec; the spec's parts are
beside it (``kafka_spec.py``, ``pod_spec.py``), and so is the status
(``simulation_status.py``). ``kubernetes_types.py`` says what the API server accepts (names,
keys, quantities) and ``contract_fields.py`` turns a producer setting of the settings contract
into a spec field with the same bounds and rules.

May import pydantic and ``domain``, never the rest of the operator.
"""
