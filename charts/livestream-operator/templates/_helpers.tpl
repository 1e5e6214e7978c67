{{- define "livestream-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "livestream-operator.labels" -}}
app.kubernetes.io/name: livestream-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "livestream-operator.selectorLabels" -}}
app.kubernetes.io/name: livestream-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "livestream-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "livestream-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "livestream-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The leader Lease; its name is the operator's --lease-name. */}}
{{- define "livestream-operator.leaseName" -}}
{{- include "livestream-operator.fullname" . -}}
{{- end -}}
