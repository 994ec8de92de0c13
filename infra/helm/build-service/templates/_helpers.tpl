{{- define "build-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "build-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "build-service.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "build-service.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "build-service.labels" -}}
app.kubernetes.io/name: {{ include "build-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "build-service.selector" -}}
app.kubernetes.io/name: {{ include "build-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The worker's ServiceAccount: the one bound to the builder Role (templates/rbac.yaml). */ -}}
{{- define "build-service.serviceAccountName" -}}
{{- default (include "build-service.fullname" .) .Values.buildService.serviceAccount.name -}}
{{- end -}}

{{- /* The API's own ServiceAccount, bound to no Role; never the worker's (the API faces the network, the worker's
account may create pods and read secrets in the build namespace). */ -}}
{{- define "build-service.apiServiceAccountName" -}}
{{- $name := default (printf "%s-api" (include "build-service.fullname" .)) .Values.buildService.api.serviceAccount.name -}}
{{- if eq $name (include "build-service.serviceAccountName" .) -}}
{{- fail (printf "buildService.api.serviceAccount.name must differ from the worker's ServiceAccount %q: that one is bound to the builder Role" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- /* Variables only the worker reads (lib/config: signing.ts, scanner.ts, the executor's KUBECONFIG): kept out of
the API's environment, in the -worker-env Secret, whichever of envApp.secret or envApp.externalsecret sets them.
"true" or empty. */ -}}
{{- define "build-service.workerOnlyVariable" -}}
{{- if or (has . (list "IMAGE_BUILDER_SCANNER_ENV" "IMAGE_SIGNER_TYPE" "KUBECONFIG")) (hasPrefix "NOTATION_" .) -}}true{{- end -}}
{{- end -}}

{{- /* Where the API reads the token and CA it fetches this cluster's JWKS with (auth.jwt without jwksUrl): a projected
token of the API's own ServiceAccount, not the automounted credentials (the API mounts none). */ -}}
{{- define "build-service.jwksReaderDir" -}}/var/run/secrets/image-build-service/jwks-reader{{- end }}
{{- define "build-service.inClusterJwks" -}}
{{- with .Values.buildService.auth.jwt }}{{ if and .issuer (not .jwksUrl) }}true{{ end }}{{ end -}}
{{- end }}

{{- /* The API Service (templates/service.yaml) as pods of the cluster reach it. */ -}}
{{- define "build-service.apiInClusterUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "build-service.fullname" .) .Release.Namespace .Values.buildService.service.port -}}
{{- end }}

{{/* Where builder pods and their pull secrets live. */}}
{{- define "build-service.buildNamespace" -}}
{{- default .Release.Namespace .Values.imageBuilder.namespace -}}
{{- end -}}

{{- define "build-service.image" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Image Builder images come from the same registry and path prefix as the service's image when mirrored. */}}
{{- define "build-service.builderRepository" -}}
{{- if .Values.imageBuilder.repository -}}
{{- .Values.imageBuilder.repository -}}
{{- else -}}
{{- $path := dir .Values.image.repository -}}
{{- if eq $path "." -}}{{ .Values.image.registry }}{{- else -}}{{ printf "%s/%s" .Values.image.registry $path }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "build-service.plainPullSecretName" -}}
{{- printf "%s-image-builder-pull-credentials" (include "build-service.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS: every Secret made from or named in imageBuilder.imagePullCredentials. */}}
{{- define "build-service.pullCredentialsSecrets" -}}
{{- $names := list -}}
{{- $creds := .Values.imageBuilder.imagePullCredentials -}}
{{- if $creds.plain -}}{{- $names = append $names (include "build-service.plainPullSecretName" .) -}}{{- end -}}
{{- range $creds.secret -}}{{- $names = append $names .name -}}{{- end -}}
{{- if .Values.buildService.secretManager.enabled -}}
{{- range $creds.externalSecret -}}{{- $names = append $names .secretName -}}{{- end -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* A values list (or a comma string) as the comma list the service reads. */}}
{{- define "build-service.commaList" -}}
{{- if kindIs "slice" . -}}{{- join "," . -}}{{- else -}}{{- . | toString -}}{{- end -}}
{{- end -}}

{{- /* Where the API reads its static tokens (the Secret of buildService.auth) and which Secret that is. */ -}}
{{- define "build-service.apiTokensDir" -}}/etc/image-build-service/auth{{- end }}
{{- define "build-service.apiTokensSecret" -}}
{{- .Values.buildService.auth.existingSecret | default (printf "%s-api-tokens" (include "build-service.fullname" .)) -}}
{{- end }}

{{- /* Where the service image keeps notation's configuration (the Dockerfile installs the plugins there); the worker
links what it finds there into NOTATION_CONFIG_HOME at start. */ -}}
{{- define "build-service.notationDefaults" -}}/home/node/.config/notation{{- end }}

{{- /* The folder of the trust store buildService.notation.trustStore names (<type>:<name>) under notation's defaults. */ -}}
{{- define "build-service.notationTrustStoreDir" -}}
{{- $n := .Values.buildService.notation -}}
{{- $store := required "buildService.notation.trustStore (<type>:<name>, e.g. signingAuthority:aws-signer-ts) is required with buildService.notation.trustStoreSecret" $n.trustStore -}}
{{- if not (regexMatch "^(ca|signingAuthority|tsa):[A-Za-z0-9_.-]+$" $store) -}}
{{- fail (printf "buildService.notation.trustStore must be <type>:<name> with type ca, signingAuthority or tsa, not %q" $store) -}}
{{- end -}}
{{- $parts := splitList ":" $store -}}
{{- printf "%s/truststore/x509/%s/%s" (include "build-service.notationDefaults" .) (index $parts 0) (index $parts 1) -}}
{{- end }}

{{- /* A memory quantity in MiB (plain bytes, or with a suffix k, M, G, T, Ki, Mi, Gi, Ti); empty for any other form,
which the service's own start-up check reads. */ -}}
{{- define "build-service.memoryMiB" -}}
{{- $quantity := toString . -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $quantity -}}
{{- $perUnit := dict "" (divf 1 1048576) "k" (divf 1000 1048576) "M" (divf 1000000 1048576) "G" (divf 1000000000 1048576) "T" (divf 1000000000000 1048576) "Ki" (divf 1 1024) "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 -}}
{{- $unit := trimPrefix $number $quantity -}}
{{- if and $number (hasKey $perUnit $unit) -}}{{- mulf (float64 $number) (get $perUnit $unit) -}}{{- end -}}
{{- end }}

{{- /* QEMU mode boots BuildKit in a VM that gets the builder's memory limit less 320 MiB for QEMU and a sixteenth, and
needs 512 MiB (lib/config/qemu-vm.ts): stop the install here rather than at the worker's start. Kaniko boots no VM. */ -}}
{{- define "build-service.checkQemuMemory" -}}
{{- $b := .Values.imageBuilder -}}
{{- $engines := $b.allowedEngines | default (list $b.buildEngine) -}}
{{- if and $b.useQemu (has "buildkit" $engines) -}}
{{- $limit := index $b.resources.limits "memory" -}}
{{- $mib := include "build-service.memoryMiB" $limit -}}
{{- if and $mib (lt (subf (mulf (float64 $mib) 0.9375) 320) 512.0) -}}
{{- fail (printf "imageBuilder.resources.limits.memory %v is too little for imageBuilder.useQemu: the VM gets the limit less 320 MiB for QEMU and a sixteenth, and needs at least 512 MiB; set at least 888Mi" $limit) -}}
{{- end -}}
{{- end -}}
{{- end }}
