{{/* Names, labels, and the pieces the Deployment and the migration Job share. */}}

{{- define "breakglass.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "breakglass.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of hook objects: the full name with a suffix, within 63. */}}
{{- define "breakglass.migrateName" -}}
{{- printf "%s-migrate" (include "breakglass.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "breakglass.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "breakglass.selectorLabels" -}}
app.kubernetes.io/name: {{ include "breakglass.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "breakglass.labels" -}}
helm.sh/chart: {{ include "breakglass.chart" . }}
{{ include "breakglass.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "breakglass.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "breakglass.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "breakglass.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where Secrets are mounted: one directory per Secret. */}}
{{- define "breakglass.secretsDir" -}}
/run/secrets/breakglass
{{- end }}

{{/*
The data directory is a subdirectory of its emptyDir: Kubernetes makes an
emptyDir root-owned and world-writable (0777), which the server refuses for
its keys' directory; the server creates the subdirectory itself, 0700.
*/}}
{{- define "breakglass.dataDir" -}}
/var/lib/breakglass/data
{{- end }}

{{/*
Every Secret the pods read, as a YAML map {mounts: [...]}: the volume name,
the Secret, the keys to project (none: all) and the mount directory.
*/}}
{{- define "breakglass.secretMounts" -}}
{{- $dir := include "breakglass.secretsDir" . }}
{{- $mounts := list }}
{{- if .Values.database.urlSecret.name }}
{{- $mounts = append $mounts (dict "volume" "secret-database" "secretName" .Values.database.urlSecret.name "keys" (list .Values.database.urlSecret.key) "path" (printf "%s/database" $dir)) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $mounts = append $mounts (dict "volume" "secret-tls" "secretName" (required "tls.secretName is required when tls.enabled" .Values.tls.secretName) "keys" (list "tls.crt" "tls.key") "path" (printf "%s/tls" $dir)) }}
{{- end }}
{{- if .Values.localKey.secretName }}
{{- $mounts = append $mounts (dict "volume" "secret-local-key" "secretName" .Values.localKey.secretName "keys" (list .Values.localKey.key) "path" (printf "%s/local-key" $dir)) }}
{{- end }}
{{- $seen := dict "database" true "tls" true "local-key" true }}
{{- range .Values.extraSecrets }}
{{- if hasKey $seen .name }}
{{- fail (printf "extraSecrets: the name %q is taken (database, tls and local-key are the chart's; names must be unique)" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $mounts = append $mounts (dict "volume" (printf "secret-%s" .name) "secretName" .secretName "keys" (.keys | default list) "path" (printf "%s/%s" $dir .name)) }}
{{- end }}
mounts: {{ toJson $mounts }}
{{- end }}

{{/*
The server's settings: .Values.config with the chart's own settings added.
The chart's settings may not be given in config (they depend on the mounts).
*/}}
{{- define "breakglass.settings" -}}
{{- $c := deepCopy (.Values.config | default dict) }}
{{- range $k := list "listen" "data_dir" "policies_dir" "migrate_on_start" "database_url_file" "allow_plain_http" }}
{{- if hasKey $c $k }}
{{- fail (printf "config.%s is set by the chart; remove it from config" $k) }}
{{- end }}
{{- end }}
{{- $dir := include "breakglass.secretsDir" . }}
{{- $_ := set $c "listen" "0.0.0.0:8200" }}
{{- $_ := set $c "data_dir" (include "breakglass.dataDir" .) }}
{{- $_ := set $c "policies_dir" "/etc/breakglass/policies" }}
{{- /* The migration Job migrates, before any new pod starts. */}}
{{- $_ := set $c "migrate_on_start" false }}
{{- if .Values.database.urlSecret.name }}
{{- if hasKey $c "database_url" }}
{{- fail "config.database_url and database.urlSecret are both set: keep one (the Secret, when the URL carries a password)" }}
{{- end }}
{{- $_ := set $c "database_url_file" (printf "%s/database/%s" $dir .Values.database.urlSecret.key) }}
{{- else if not (hasKey $c "database_url") }}
{{- fail "no database: set database.urlSecret (or config.database_url for a URL without a password)" }}
{{- else if hasPrefix "sqlite" (toString $c.database_url) }}
{{- fail "config.database_url: SQLite lives in the pod's emptyDir and is lost with it; use PostgreSQL" }}
{{- end }}
{{- $tls := deepCopy (get $c "tls" | default dict) }}
{{- range $k := list "cert_file" "key_file" }}
{{- if hasKey $tls $k }}
{{- fail (printf "config.tls.%s is set by the chart from tls.secretName; remove it from config" $k) }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $_ := set $tls "cert_file" (printf "%s/tls/tls.crt" $dir) }}
{{- $_ := set $tls "key_file" (printf "%s/tls/tls.key" $dir) }}
{{- $_ := set $c "tls" $tls }}
{{- else }}
{{- /* Plain HTTP on the pod network: TLS ends at the ingress or the mesh. */}}
{{- $_ := set $c "allow_plain_http" true }}
{{- end }}
{{- $keys := deepCopy (get $c "keys" | default dict) }}
{{- range $k := list "signing_keys" "local_key_file" }}
{{- if hasKey $keys $k }}
{{- fail (printf "config.keys.%s is set by the chart; remove it from config" $k) }}
{{- end }}
{{- end }}
{{- /* Replicas share the signing keys through the database, sealed by the key service. */}}
{{- $_ := set $keys "signing_keys" "database" }}
{{- if .Values.localKey.secretName }}
{{- $_ := set $keys "local_key_file" (printf "%s/local-key/%s" $dir .Values.localKey.key) }}
{{- else if eq (toString ($keys.service | default "local")) "local" }}
{{- fail "keys.service is \"local\": every replica needs the same key, so set localKey.secretName (or use aws-kms)" }}
{{- end }}
{{- $_ := set $c "keys" $keys }}
{{- toJson $c }}
{{- end }}

{{/*
Whole numbers of a map (and of the maps and lists in it) become integers,
in place. Helm reads every number of the values as a float, which toToml
writes as 16.0 or 1e+08, and the server wants integers (the file has no
float setting).
*/}}
{{- define "breakglass.integers" -}}
{{- $m := . }}
{{- range $k, $v := $m }}
{{- if and (kindIs "float64" $v) (eq $v (floor $v)) }}
{{- $_ := set $m $k (int64 $v) }}
{{- else if kindIs "map" $v }}
{{- $_ := include "breakglass.integers" $v }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $v }}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}
{{- $items = append $items (int64 .) }}
{{- else }}
{{- if kindIs "map" . }}
{{- $_ := include "breakglass.integers" . }}
{{- end }}
{{- $items = append $items . }}
{{- end }}
{{- end }}
{{- $_ := set $m $k $items }}
{{- end }}
{{- end }}
{{- end }}

{{/* breakglass.toml. */}}
{{- define "breakglass.toml" -}}
{{- $c := include "breakglass.settings" . | fromJson }}
{{- $_ := include "breakglass.integers" $c }}
{{- toToml $c }}
{{- end }}

{{/* The ConfigMap's data: the settings and the policy files. */}}
{{- define "breakglass.configData" -}}
breakglass.toml: |
{{ include "breakglass.toml" . | trim | indent 2 }}
{{- if not .Values.policies }}
{{- fail "policies: give at least one policy file; the server does not start without one" }}
{{- end }}
{{- range $name, $text := .Values.policies }}
policy.{{ $name }}: |
{{ $text | indent 2 }}
{{- end }}
{{- end }}

{{- define "breakglass.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "breakglass.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
The environment carries no secret and no setting but the configuration
file's path: the settings are in the file, the secrets in mounted files.
*/}}
{{- define "breakglass.env" -}}
- name: BREAKGLASS_CONFIG
  value: /etc/breakglass/breakglass.toml
{{- if .Values.logFilter }}
- name: BREAKGLASS_LOG
  value: {{ .Values.logFilter | quote }}
{{- end }}
{{- end }}

{{/* Volumes; `configMap` is the ConfigMap to read (the hook's for the Job). */}}
{{- define "breakglass.volumes" -}}
{{- $root := .root -}}
- name: data
  emptyDir:
    sizeLimit: {{ $root.Values.dataDirSizeLimit }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ $root.Values.tmpSizeLimit }}
- name: config
  configMap:
    name: {{ .configMap }}
    items:
      - key: breakglass.toml
        path: breakglass.toml
      {{- range $name, $_ := $root.Values.policies }}
      - key: policy.{{ $name }}
        path: policies/{{ $name }}
      {{- end }}
{{- range (include "breakglass.secretMounts" $root | fromYaml).mounts }}
- name: {{ .volume }}
  secret:
    secretName: {{ .secretName }}
    # 0440: readable by the pod's group (fsGroup), which the server accepts
    # for a mounted Secret; never writable.
    defaultMode: 288
    {{- if .keys }}
    items:
      {{- range .keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "breakglass.volumeMounts" -}}
- name: data
  mountPath: /var/lib/breakglass
- name: tmp
  mountPath: /tmp
- name: config
  mountPath: /etc/breakglass
  readOnly: true
{{- range (include "breakglass.secretMounts" . | fromYaml).mounts }}
- name: {{ .volume }}
  mountPath: {{ .path }}
  readOnly: true
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules; an empty list of CIDRs renders no rule (a rule without `to` would allow every address). */}}
{{- define "breakglass.egressDns" -}}
- to:
    {{- toYaml .Values.networkPolicy.egress.dns.to | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{- define "breakglass.egressDatabase" -}}
{{- with .Values.networkPolicy.egress.database }}
{{- if .cidrs }}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}
{{- end }}
{{- end }}

{{/* HTTPS to the CIDRs of the AWS endpoints, the OIDC provider, the alert receivers and the audit sink. */}}
{{- define "breakglass.egressHttps" -}}
{{- $egress := .Values.networkPolicy.egress }}
{{- range $what := list "aws" "oidc" "alerts" "auditSink" }}
{{- $cidrs := (get $egress $what).cidrs }}
{{- if $cidrs }}
# {{ $what }}
- to:
    {{- range $cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - protocol: TCP
      port: 443
{{- end }}
{{- end }}
{{- end }}
