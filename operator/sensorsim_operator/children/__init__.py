"""Pure builders of a simulation's children: a settings ConfigMap, a headless Service and the
StatefulSet of producer pods, and the comparisons the reconciler makes with what it finds.

Every function here maps (simulation, spec, defaults) to plain manifests and nothing else: no
API calls, no clock, no randomness. The same input always gives byte-identical manifests, which
is what makes server-side apply of them idempotent and the config hash stable.

The manifests are *apply configurations*: they hold only the fields the operator owns, so
server-side apply merges them with whatever Kubernetes or other managers add (defaults, a
``kubectl rollout restart`` annotation) without fighting over those fields.

May import: ``sensorsim_operator.api``, ``sensorsim_operator.names`` and ``domain``; never the
API client (``kube``), the reconciler or kopf.
"""
