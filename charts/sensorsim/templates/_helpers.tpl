{{/*
Named templates of the sensorsim chart. Object names are `<fullname>-<component>`; every object
carries the app.kubernetes.io/* labels of `sensorsim.labels`.
*/}}

{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "sensorsim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: `<release>-<chart>`, or the release name alone when it already contains
the chart name. Truncated to 46 characters so that every derived name stays valid: the longest
Service name, `<fullname>-operator-metrics`, fits in 63 (a DNS label), and the Kafka StatefulSet,
`<fullname>-kafka`, in 52 (its pods' controller-revision-hash label adds 11 characters).
*/}}
{{- define "sensorsim.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 46 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `helm.sh/chart` label value: `<chart>-<version>`. */}}
{{- define "sensorsim.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Names of the components' objects. */}}
{{- define "sensorsim.operator.fullname" -}}
{{- printf "%s-operator" (include "sensorsim.fullname" .) -}}
{{- end -}}

{{- define "sensorsim.kafka.fullname" -}}
{{- printf "%s-kafka" (include "sensorsim.fullname" .) -}}
{{- end -}}

{{/*
Standard labels. Usage: include "sensorsim.labels" (dict "context" $ "component" "operator")
*/}}
{{- define "sensorsim.labels" -}}
{{- $ctx := .context -}}
helm.sh/chart: {{ include "sensorsim.chart" $ctx }}
{{ include "sensorsim.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: sensorsim
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels (immutable in Deployments and StatefulSets: never add version-dependent ones).
Usage: include "sensorsim.selectorLabels" (dict "context" $ "component" "operator")
*/}}
{{- define "sensorsim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sensorsim.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/*
metadata.annotations of an object: commonAnnotations merged with the given ones.
Usage: include "sensorsim.annotations" (dict "context" $ "annotations" .Values.x.annotations)
Renders nothing when both are empty; use it as `with (include ...)` + nindent.
*/}}
{{- define "sensorsim.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .annotations)) (deepCopy (default (dict) .context.Values.commonAnnotations)) -}}
{{- if $all -}}
annotations:
  {{- toYaml $all | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Name of the operator's service account. */}}
{{- define "sensorsim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sensorsim.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Full image reference from an image dict: `[registry/]repository(:tag|@digest)`.
global.imageRegistry wins over the image's registry; the tag defaults to the chart's appVersion.
Usage: include "sensorsim.imageRef" (dict "image" .Values.image "context" $)
*/}}
{{- define "sensorsim.imageRef" -}}
{{- $registry := .image.registry -}}
{{- with .context.Values.global -}}
{{- if .imageRegistry -}}
{{- $registry = .imageRegistry -}}
{{- end -}}
{{- end -}}
{{- $repository := .image.repository -}}
{{- if $registry -}}
{{- $repository = printf "%s/%s" $registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString (default .context.Chart.AppVersion .image.tag)) -}}
{{- end -}}
{{- end -}}

{{/* The sensorsim image (operator, tests). */}}
{{- define "sensorsim.image" -}}
{{- include "sensorsim.imageRef" (dict "image" .Values.image "context" .) -}}
{{- end -}}

{{/* The image of the producer pods the operator creates (PRODUCER_IMAGE). */}}
{{- define "sensorsim.producerImage" -}}
{{- default (include "sensorsim.image" .) .Values.producerImage -}}
{{- end -}}

{{/* The dev Kafka image. */}}
{{- define "sensorsim.kafka.image" -}}
{{- include "sensorsim.imageRef" (dict "image" .Values.kafka.image "context" .) -}}
{{- end -}}

{{/*
imagePullSecrets of a pod: global ones plus the given list (strings or {name: ...}).
Usage: include "sensorsim.imagePullSecrets" (dict "secrets" .Values.image.pullSecrets "context" $)
*/}}
{{- define "sensorsim.imagePullSecrets" -}}
{{- $names := list -}}
{{- range (concat (default (list) .context.Values.global.imagePullSecrets) (default (list) .secrets)) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- if $names -}}
imagePullSecrets:
{{- range (uniq $names) }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
A security context value without the chart-only `enabled` key; empty when disabled.
Usage: include "sensorsim.securityContext" .Values.podSecurityContext
*/}}
{{- define "sensorsim.securityContext" -}}
{{- if .enabled -}}
{{- toYaml (omit . "enabled") -}}
{{- end -}}
{{- end -}}

{{/*
An HTTP or TCP probe from a probe value (without its `enabled` key).
Usage: include "sensorsim.probe" (dict "probe" .Values.livenessProbe "handler" (dict "httpGet" ...))
*/}}
{{- define "sensorsim.probe" -}}
{{- toYaml (merge (deepCopy .handler) (omit .probe "enabled")) -}}
{{- end -}}

{{/* Address of the dev Kafka's client Service (`host:port`). */}}
{{- define "sensorsim.kafka.bootstrapServers" -}}
{{- printf "%s.%s.svc.%s:%d" (include "sensorsim.kafka.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.kafka.service.port) -}}
{{- end -}}

{{/* Name of the dev Kafka's headless Service (stable pod DNS names). */}}
{{- define "sensorsim.kafka.headlessServiceName" -}}
{{- printf "%s-headless" (include "sensorsim.kafka.fullname" .) -}}
{{- end -}}

{{/*
WATCH_NAMESPACES of the operator: comma-separated; `watchNamespaces`, else the release namespace;
empty (all namespaces) with `watchAnyNamespace`.
*/}}
{{- define "sensorsim.watchNamespaces" -}}
{{- if .Values.watchAnyNamespace -}}
{{- else if .Values.watchNamespaces -}}
{{- join "," (uniq .Values.watchNamespaces) -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Namespace of a `simulations` item. Usage: include "sensorsim.simulationNamespace" (dict "sim" . "context" $) */}}
{{- define "sensorsim.simulationNamespace" -}}
{{- default .context.Release.Namespace .sim.namespace -}}
{{- end -}}

{{/*
Bootstrap servers of a `simulations` item: its own, else the dev Kafka's, else empty.
Usage: include "sensorsim.simulationBootstrap" (dict "sim" . "context" $)
*/}}
{{- define "sensorsim.simulationBootstrap" -}}
{{- $kafka := dig "spec" "kafka" (dict) .sim -}}
{{- if $kafka.bootstrapServers -}}
{{- $kafka.bootstrapServers -}}
{{- else if .context.Values.kafka.enabled -}}
{{- include "sensorsim.kafka.bootstrapServers" .context -}}
{{- end -}}
{{- end -}}

{{/* Bootstrap servers the helm test reads from; empty when none is known (no test pod then). */}}
{{- define "sensorsim.tests.bootstrapServers" -}}
{{- if .Values.tests.bootstrapServers -}}
{{- .Values.tests.bootstrapServers -}}
{{- else if .Values.simulations -}}
{{- include "sensorsim.simulationBootstrap" (dict "sim" (first .Values.simulations) "context" .) -}}
{{- else if .Values.kafka.enabled -}}
{{- include "sensorsim.kafka.bootstrapServers" . -}}
{{- end -}}
{{- end -}}

{{/* Topic the helm test reads. */}}
{{- define "sensorsim.tests.topic" -}}
{{- if .Values.tests.topic -}}
{{- .Values.tests.topic -}}
{{- else if .Values.simulations -}}
{{- dig "spec" "kafka" "topic" "sensor-data" (first .Values.simulations) -}}
{{- else -}}
sensor-data
{{- end -}}
{{- end -}}

{{/*
Cross-field checks that values.schema.json cannot express. Fails the render with a message that
names the value and says what to fix.
*/}}
{{- define "sensorsim.validateValues" -}}
{{- $names := list -}}
{{- range $i, $sim := .Values.simulations -}}
{{- $ns := include "sensorsim.simulationNamespace" (dict "sim" $sim "context" $) -}}
{{- $key := printf "%s/%s" $ns $sim.name -}}
{{- if has $key $names -}}
{{- fail (printf "simulations[%d]: the name %q is used twice in namespace %q; give each simulation a unique name" $i $sim.name $ns) -}}
{{- end -}}
{{- $names = append $names $key -}}
{{- if not (include "sensorsim.simulationBootstrap" (dict "sim" $sim "context" $)) -}}
{{- fail (printf "simulations[%d] (%s): set spec.kafka.bootstrapServers, or kafka.enabled=true to use the dev Kafka" $i $sim.name) -}}
{{- end -}}
{{- $watched := splitList "," (include "sensorsim.watchNamespaces" $) -}}
{{- if and (not $.Values.watchAnyNamespace) (not (has $ns $watched)) -}}
{{- fail (printf "simulations[%d] (%s): namespace %q is not watched by the operator (it watches %s), so it would never see it; add it to watchNamespaces" $i $sim.name $ns (join ", " $watched)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.watchAnyNamespace .Values.watchNamespaces -}}
{{- fail "watchAnyNamespace=true watches every namespace: leave watchNamespaces empty, or set watchAnyNamespace=false to watch only the listed ones" -}}
{{- end -}}
{{- $lease := .Values.leaderElection -}}
{{- if ge (int $lease.renewDeadlineSeconds) (int $lease.leaseDurationSeconds) -}}
{{- fail "leaderElection.renewDeadlineSeconds must be less than leaderElection.leaseDurationSeconds: a leader that cannot renew must stop before a standby may take over" -}}
{{- end -}}
{{- if le (mul 10 (int $lease.renewDeadlineSeconds)) (mul 12 (int $lease.retryPeriodSeconds)) -}}
{{- fail "leaderElection.renewDeadlineSeconds must be more than 1.2 times leaderElection.retryPeriodSeconds: the leader needs more than one renewal attempt within its deadline" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled=true needs metrics.enabled=true (the ServiceMonitor scrapes the metrics Service)" -}}
{{- end -}}
{{- end -}}

{{/* Role (and RoleBinding) of the operator's leader election: `<fullname>-leader-election`. */}}
{{- define "sensorsim.leaderElectionRoleName" -}}
{{- printf "%s-leader-election" (include "sensorsim.fullname" .) -}}
{{- end -}}
