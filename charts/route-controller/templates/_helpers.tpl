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

{{/*
The agent's environment, as a YAML list of name/value pairs: each value trimmed as the agent trims it,
and an empty value left out, so the agent's own default applies. templates/_validate.tpl has refused
bad values before.
*/}}
{{- define "route-controller.env" -}}
{{- $rc := .Values.routeController -}}
{{- $cidrs := list -}}
{{- range $rc.serviceCIDRs }}{{ $cidrs = append $cidrs (include "route-controller.trim" .) }}{{ end -}}
{{- $env := list
  (list "LOG_LEVEL" (include "route-controller.logLevel" .))
  (list "FIREWALL_BACKEND" $rc.firewallBackend)
  (list "BLOCK_ACTION" $rc.blockAction)
  (list "RESYNC_INTERVAL" $rc.resyncInterval)
  (list "CLEANUP_ON_EXIT" (ternary (toString $rc.cleanupOnExit) "" (kindIs "bool" $rc.cleanupOnExit)))
  (list "LISTEN_ADDRESS" (printf "0.0.0.0:%d" (int $rc.port)))
  (list "METRICS_LISTEN_ADDRESS" (include "route-controller.metricsListenAddress" .))
  (list "IPTABLES_LOCK_WAIT" $rc.iptablesLockWait)
  (list "SERVICE_CIDRS" (join "," $cidrs))
  (list "DISCOVERY_SOURCES" (ternary "" (include "route-controller.discoverySourcesValue" .) (gt (len $cidrs) 0)))
  (list "POD_LOOKUP" (include "route-controller.staleFlag" (list $rc "podLookup")))
  (list "STALE_CLUSTERIP_EVENTS" (include "route-controller.staleFlag" (list $rc "events")))
-}}
{{- range $pair := $env -}}
{{- with include "route-controller.trim" (default "" (last $pair)) }}
- name: {{ first $pair }}
  value: {{ quote . }}
{{- end -}}
{{- end }}
{{- if include "route-controller.cleanupOnUninstall" . }}
{{- /* The uninstall check: the DaemonSet this pod belongs to, in POD_NAMESPACE. */}}
- name: DAEMONSET_NAME
  value: "route-controller"
{{- end }}
{{- /* From the downward API: this node's name (node-args source), the pod's namespace (dry-run source, uninstall check). */}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/*
routeController.discovery.sources as DISCOVERY_SOURCES: the items trimmed, comma-joined; "" when the
list is empty or null (the agent then takes its default). _validate.tpl has refused bad items.
*/}}
{{- define "route-controller.discoverySourcesValue" -}}
{{- $items := list -}}
{{- range (default list (default dict .Values.routeController.discovery).sources) }}{{ $items = append $items (include "route-controller.trim" .) }}{{ end -}}
{{- join "," $items -}}
{{- end -}}

{{/*
routeController.staleClusterIPs.<key> as the true or false the agent takes, "" when unset (the agent's
default). (list $rc "podLookup")
*/}}
{{- define "route-controller.staleFlag" -}}
{{- $value := get (default dict (index . 0).staleClusterIPs) (index . 1) -}}
{{- if kindIs "bool" $value }}{{ toString $value }}{{ end -}}
{{- end -}}

{{/* The discovery sources the agent will use, comma-joined: the list given, or the agent's default. */}}
{{- define "route-controller.discoverySources" -}}
{{- default "servicecidr,kubeadm,node-args" (include "route-controller.discoverySourcesValue" .) -}}
{{- end -}}

{{/* Whether the ServiceMonitor (and its Service) are rendered: "true" or "". */}}
{{- define "route-controller.serviceMonitorEnabled" -}}
{{- if (default dict (default dict .Values.metrics).serviceMonitor).enabled }}true{{ end -}}
{{- end -}}

{{/*
Where /metrics is served (METRICS_LISTEN_ADDRESS), trimmed: metrics.listenAddress, or when it is
empty 127.0.0.1:9772 (the node alone, the agent's own default), or 0.0.0.0:9772 with the
ServiceMonitor, which Prometheus must reach on the node's address.
*/}}
{{- define "route-controller.metricsListenAddress" -}}
{{- $given := include "route-controller.trim" (default "" (default dict .Values.metrics).listenAddress) -}}
{{- if $given -}}{{ $given }}
{{- else if include "route-controller.serviceMonitorEnabled" . -}}0.0.0.0:9772
{{- else -}}127.0.0.1:9772
{{- end -}}
{{- end -}}

{{/* The port of /metrics, or nothing when metrics are off. */}}
{{- define "route-controller.metricsPort" -}}
{{- $address := include "route-controller.metricsListenAddress" . -}}
{{- if ne $address "off" -}}
{{- atoi (regexFind `[0-9]+$` $address) -}}
{{- end -}}
{{- end -}}

{{/*
The chart's rule groups (rules/route-controller.yaml) as metrics.prometheusRule changes them: alerts
disabled or overridden by name, runbook_url added, and the additional rules in a group of their own.
_validate.tpl has refused overrides of alerts the chart does not have.
*/}}
{{- define "route-controller.ruleGroups" -}}
{{- $pr := default dict (default dict .Values.metrics).prometheusRule -}}
{{- $overrides := default dict $pr.alerts -}}
{{- $groups := list -}}
{{- range $group := (.Files.Get "rules/route-controller.yaml" | fromYaml).groups -}}
{{- $rules := list -}}
{{- range $rule := $group.rules -}}
{{- $override := default dict (get $overrides $rule.alert) -}}
{{- if not $override.disabled -}}
{{- $changed := mergeOverwrite (deepCopy $rule) (omit (deepCopy $override) "disabled") -}}
{{- with $pr.runbookURL -}}
{{- $_ := set $changed "annotations" (merge (dict "runbook_url" (printf "%s#%s" (include "route-controller.trim" .) (lower $rule.alert))) $changed.annotations) -}}
{{- end -}}
{{- $rules = append $rules $changed -}}
{{- end -}}
{{- end -}}
{{- $groups = append $groups (dict "name" $group.name "rules" $rules) -}}
{{- end -}}
{{- with $pr.additionalRules -}}
{{- $groups = append $groups (dict "name" "route-controller-additional" "rules" .) -}}
{{- end -}}
{{- toYaml (dict "groups" $groups) -}}
{{- end -}}

{{/* The names of the chart's alerts, comma-separated. */}}
{{- define "route-controller.alertNames" -}}
{{- $names := list -}}
{{- range (.Files.Get "rules/route-controller.yaml" | fromYaml).groups }}{{ range .rules }}{{ $names = append $names .alert }}{{ end }}{{ end -}}
{{- join ", " $names -}}
{{- end -}}

{{/* The labels of the metrics Service, which the ServiceMonitor selects it by. */}}
{{- define "route-controller.metricsServiceLabels" -}}
app.kubernetes.io/name: route-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: metrics
{{- end -}}

{{/* Whether the agents remove their rules when the release is uninstalled: on unless set to false. */}}
{{- define "route-controller.cleanupOnUninstall" -}}
{{- if ne (toString .Values.routeController.cleanupOnUninstall) "false" -}}true{{- end -}}
{{- end -}}
