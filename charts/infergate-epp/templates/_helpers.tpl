{{- define "epp.poolName" -}}
{{- required "pool.name is required: the InferencePool this picker serves" .Values.pool.name -}}
{{- end -}}

{{- define "epp.poolNamespace" -}}
{{- default .Release.Namespace .Values.pool.namespace -}}
{{- end -}}

{{/* `<pool>-epp` as in the Inference Extension's manifests, so `endpointPickerRef.name` matches. */}}
{{- define "epp.fullname" -}}
{{- default (printf "%s-epp" (include "epp.poolName" .)) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "epp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "epp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "epp.selectorLabels" -}}
app.kubernetes.io/name: infergate-epp
app.kubernetes.io/instance: {{ .Release.Name }}
inference.networking.k8s.io/pool: {{ include "epp.poolName" . }}
{{- end -}}

{{- define "epp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: infergate
app.kubernetes.io/component: epp
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "epp.selectorLabels" . }}
{{- end -}}
