{{/*
Rendered by helm and by deploy/render.py: keep to the template subset documented in render.py.
*/}}
{{- define "noetl.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "noetl.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels; context: dict "root" $ "component" NAME */}}
{{- define "noetl.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "noetl.labels" -}}
{{ include "noetl.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* In-cluster URL of the API Service (no /api suffix). */}}
{{- define "noetl.apiUrl" -}}
{{- $scheme := "http" -}}
{{- if .Values.tls.secretName }}{{ $scheme = "https" }}{{ end -}}
{{- printf "%s://%s-api.%s.svc.cluster.local:%d" $scheme (include "noetl.fullname" .) .Release.Namespace (int .Values.api.port) -}}
{{- end -}}

{{- define "noetl.publicServerUrl" -}}
{{- .Values.publicServerUrl | default (include "noetl.apiUrl" .) -}}
{{- end -}}

{{/* One env entry from a Secret; context: dict "name" ENV "ref" {name,key} */}}
{{- define "noetl.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
{{- end -}}

{{/* Non-secret database settings (server-side roles only: workers and the gateway never get them). */}}
{{- define "noetl.dbEnv" -}}
- name: POSTGRES_HOST
  value: {{ .Values.postgres.host | quote }}
- name: POSTGRES_PORT
  value: {{ .Values.postgres.port | quote }}
- name: POSTGRES_USER
  value: {{ .Values.postgres.user | quote }}
- name: POSTGRES_DATABASE
  value: {{ .Values.postgres.database | quote }}
- name: POSTGRES_MAX_CONNECTIONS
  value: {{ .Values.postgres.maxConnections | quote }}
{{ include "noetl.secretEnv" (dict "name" "POSTGRES_PASSWORD" "ref" .Values.secrets.postgresPassword) }}
{{- end -}}

{{/*
Probes of the seed's table. context: dict "root" $ "port" N "tcp" BOOL "scheme" HTTP|HTTPS "paths" (dict liveness/readiness/startup → path)
tcp → tcpSocket (mTLS: kubelet probes present no client certificate).
*/}}
{{- define "noetl.probes" -}}
{{- $p := .root.Values.probes -}}
{{- range $kind := list "liveness" "readiness" "startup" }}
{{ $kind }}Probe:
  {{- if $.tcp }}
  tcpSocket:
    port: {{ $.port }}
  {{- else }}
  httpGet:
    path: {{ index $.paths $kind }}
    port: {{ $.port }}
    scheme: {{ $.scheme }}
  {{- end }}
  {{- $cfg := index $p $kind }}
  {{- if $cfg.initialDelaySeconds }}
  initialDelaySeconds: {{ $cfg.initialDelaySeconds }}
  {{- end }}
  periodSeconds: {{ $cfg.periodSeconds }}
  failureThreshold: {{ $cfg.failureThreshold }}
{{- end }}
{{- end -}}

{{- define "noetl.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
