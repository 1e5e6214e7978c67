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
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The leader Lease; its name is the operator's --lease-name. */}}
{{- define "livestream-operator.leaseName" -}}
{{- include "livestream-operator.fullname" . -}}
{{- end -}}

{{/* One HTTP probe of the operator: the path, and the timings from values. */}}
{{- define "livestream-operator.probe" -}}
{{- $probe := index . 1 -}}
httpGet:
  path: {{ index . 0 }}
  port: http
{{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" }}
{{- if hasKey $probe $field }}
{{ $field }}: {{ index $probe $field }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Checks across values, which values.schema.json cannot state with a clear message. */}}
{{- define "livestream-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection) -}}
{{- fail (printf "replicaCount=%d needs leaderElection=true: without the Lease every replica would reconcile the same streams" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.gateway.enabled (not .Values.gateway.url) -}}
{{- fail "gateway.enabled needs gateway.url: the rtmp://HOST:PORT at which encoders reach the gateway, which the streams' status shows" -}}
{{- end -}}
{{- if and .Values.gateway.tls.secretName (not .Values.gateway.secureUrl) -}}
{{- fail "gateway.tls.secretName needs gateway.secureUrl: the rtmps://HOST:PORT at which encoders reach the gateway" -}}
{{- end -}}
{{- end -}}

{{/* The ingest gateway's objects, and the Secret of its routes. */}}
{{- define "livestream-operator.gatewayName" -}}
{{- printf "%s-gateway" (include "livestream-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "livestream-operator.gatewayRoutesSecret" -}}
{{- printf "%s-gateway-routes" (include "livestream-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "livestream-operator.gatewaySelectorLabels" -}}
app.kubernetes.io/name: livestream-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of one alert: its severity, then prometheusRule.alertLabels. */}}
{{- define "livestream-operator.alertLabels" -}}
{{- $root := index . 0 -}}
severity: {{ index . 1 }}
{{- with $root.Values.prometheusRule.alertLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An alert's runbook: its section of the operations guide (headings are the alert names). */}}
{{- define "livestream-operator.runbook" -}}
{{- $root := index . 0 -}}
{{- printf "%s#%s" $root.Values.prometheusRule.runbookBaseUrl (lower (index . 1)) -}}
{{- end -}}
