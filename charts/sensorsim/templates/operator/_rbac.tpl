{{/*
The operator's RBAC rules. What it does, and so what it may do (and nothing else; in particular
it cannot read Secrets: producer pods get Kafka credentials through secretKeyRef, resolved by the
kubelet, so the operator never needs the values):
*/}}

{{/* Rules in every namespace the operator watches. */}}
{{- define "sensorsim.rbac.namespacedRules" -}}
# SensorSimulation: watched; patched by kopf (finalizer, last-handled-configuration annotation).
- apiGroups: ["sensorsim.io"]
  resources: ["sensorsimulations"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Its status (observedGeneration, replicas, shard table, conditions) and the scale subresource.
- apiGroups: ["sensorsim.io"]
  resources: ["sensorsimulations/status", "sensorsimulations/scale"]
  verbs: ["get", "patch", "update"]
# Children: the settings ConfigMap and the producers' headless Service.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Child: the producers' StatefulSet.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Producer pods, read only: readiness for the status.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events about the handling of a SensorSimulation (kopf posts them; core and events.k8s.io APIs).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/*
Cluster-scoped rules kopf needs in every mode: it lists and watches CustomResourceDefinitions to
notice when the SensorSimulation CRD appears, changes or goes away.
*/}}
{{- define "sensorsim.rbac.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Cluster-scoped rules kopf needs only when it watches listed namespaces: it lists and watches
Namespace objects to match them against its namespace list (kopf's namespace observer; it skips
this when it watches the whole cluster). This reveals namespace names, nothing inside them.
*/}}
{{- define "sensorsim.rbac.namespaceObservationRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}
