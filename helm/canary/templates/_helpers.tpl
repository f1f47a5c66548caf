{{/*
Names and labels shared by every template. Object names are the "fullname": fullnameOverride,
else the release name when it already contains the chart's name (`helm install canary ...`),
else "<release>-<name>". Kubernetes names are DNS labels, hence the 63-character cut.
*/}}

{{- define "canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "canary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", cut so that the suffix always survives. */}}
{{- define "canary.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "canary.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "canary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels never change between chart versions (a Deployment's selector is immutable): the
controller's are name + instance, the metrics server's name is "<name>-metrics-server".
*/}}
{{- define "canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "canary.metricsServer.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-metrics-server" (include "canary.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "canary.commonLabels" -}}
helm.sh/chart: {{ include "canary.chart" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: canary
{{- end -}}

{{/* Every object of the controller: selector labels, component and the common ones. */}}
{{- define "canary.labels" -}}
{{ include "canary.selectorLabels" . }}
app.kubernetes.io/component: controller
{{ include "canary.commonLabels" . }}
{{- end -}}

{{- define "canary.metricsServer.labels" -}}
{{ include "canary.metricsServer.selectorLabels" . }}
app.kubernetes.io/component: metrics-server
{{ include "canary.commonLabels" . }}
{{- end -}}

{{- define "canary.serviceAccountName" -}}
{{- include "canary.fullname" . -}}
{{- end -}}

{{- define "canary.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The metrics Service's name, which is also the job label Prometheus gives its targets. */}}
{{- define "canary.metricsServiceName" -}}
{{- include "canary.suffixed" (list . "metrics") -}}
{{- end -}}

{{/* Scheduling and pull secrets, shared by the controller's and the metrics server's Pods. */}}
{{- define "canary.podPlacement" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
