{{/*
The operator's RBAC rules. What it does, and so what it may do (and nothing else; in particular
it cannot read Secrets: producer pods get Kafka credentials through secretKeyRef, resolved by the
kubelet, so the operator never needs the values):
*/}}

{{/* Rules in every namespace the operator watches (a Role in each, or the ClusterRole with watchAnyNamespace). */}}
{{- define "sensorsim.rbac.namespacedRules" -}}
# SensorSimulation: watched; patched by kopf (its last-handled-configuration annotation).
- apiGroups: ["sensorsim.io"]
  resources: ["sensorsimulations"]
  verbs: ["get", "list", "watch", "patch"]
# Its status: observedGeneration, replicas, shard table, conditions.
- apiGroups: ["sensorsim.io"]
  resources: ["sensorsimulations/status"]
  verbs: ["get", "patch"]
# Children carry blockOwnerDeletion, which needs update on the owner's finalizers where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["sensorsim.io"]
  resources: ["sensorsimulations/finalizers"]
  verbs: ["update"]
# Children, applied with server-side apply (create + patch). No delete: the garbage collector
# removes them through their ownerReferences.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Producer pods: read only, so status can name pods that cannot run (CrashLoopBackOff,
# ImagePullBackOff, OOMKilled, Unschedulable). The operator never creates or changes pods.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Warning events about a SensorSimulation (kubectl describe sensim).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
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
Cluster-scoped rules kopf needs unless it watches every namespace: it lists and watches
Namespace objects to match them against its namespace list (kopf's namespace observer; it skips
this when it watches the whole cluster). This reveals namespace names, nothing inside them.
*/}}
{{- define "sensorsim.rbac.namespaceObservationRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Rules in the release namespace only: the operator pods compete for one Lease there (created by
the first, then read and renewed with resourceVersion preconditions). No delete, no list.
*/}}
{{- define "sensorsim.rbac.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}
