{{/* The release's base name: <release> when it already holds the chart's name, else <release>-<chart>. */}}
{{- define "crm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* One service's resource name. Call with (dict "root" $ "service" "crm"). */}}
{{- define "crm.serviceName" -}}
{{- printf "%s-%s" (include "crm.fullname" .root) .service -}}
{{- end -}}

{{- define "crm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "crm.selectorLabels" . }}
{{- end -}}

{{- define "crm.selectorLabels" -}}
app.kubernetes.io/name: {{ .service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "crm.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .service (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* An env entry read from the Secret: the service's own secretKeys entry, else secret.keys.
Call with (dict "root" $ "svc" $svc "var" "RABBITMQ_URL"). */}}
{{- define "crm.secretEnv" -}}
{{- $keys := merge (deepCopy (.svc.secretKeys | default dict)) (.root.Values.secret.keys | default dict) -}}
{{- $ref := index $keys .var | default dict -}}
{{- if not $ref.key -}}
{{- fail (printf "secret.keys.%s: no key in the Secret is named for this variable" .var) -}}
{{- end -}}
- name: {{ .var }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | default (required "secret.name: name the existing Secret holding the credentials" .root.Values.secret.name) }}
      key: {{ $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* An HTTP probe on a named port (http by default). Call with (dict "root" $ "probe" .Values.probes.readiness). */}}
{{- define "crm.probe" -}}
httpGet:
  path: {{ required "every probe needs a path" .probe.path }}
  port: {{ .probe.port | default "http" }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}
