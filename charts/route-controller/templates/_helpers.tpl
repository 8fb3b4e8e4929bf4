{{/*
Whether route-controller is installed. routeController.enabled true or false decides; null (the
default) means auto: on when image.registry is "local" or starts with "localhost:", which is how local
clusters get their images (side-loaded, or from a registry on the developer's machine).
*/}}
{{- define "route-controller.enabled" -}}
{{- $enabled := .Values.routeController.enabled -}}
{{- if kindIs "invalid" $enabled -}}
{{- if include "route-controller.localRegistry" . -}}true{{- end -}}
{{- else if $enabled -}}true{{- end -}}
{{- end -}}

{{- define "route-controller.localRegistry" -}}
{{- $registry := toString .Values.image.registry -}}
{{- if or (eq $registry "local") (hasPrefix "localhost:" $registry) -}}true{{- end -}}
{{- end -}}

{{/* The image, each part inheriting the chart-wide value when routeController's own is empty. */}}
{{- define "route-controller.image" -}}
{{- $registry := default .Values.image.registry .Values.routeController.image.registry -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .Values.routeController.image.name $tag -}}
{{- end -}}

{{- define "route-controller.pullPolicy" -}}
{{- default .Values.image.pullPolicy .Values.routeController.image.pullPolicy -}}
{{- end -}}

{{- define "route-controller.logLevel" -}}
{{- default .Values.logLevel .Values.routeController.logLevel -}}
{{- end -}}

{{/* Cluster-scoped objects carry the namespace, so releases in two namespaces do not collide. */}}
{{- define "route-controller.clusterName" -}}
{{- printf "route-controller-%s" .Release.Namespace -}}
{{- end -}}

{{/* What the pods are selected by; `kubectl logs -l app=route-controller` relies on it. */}}
{{- define "route-controller.selectorLabels" -}}
app: route-controller
{{- end -}}

{{- define "route-controller.labels" -}}
app.kubernetes.io/name: route-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}
