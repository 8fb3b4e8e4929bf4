{{/*
Checks of every value the chart passes to the agent, with the agent's own rules
(packages/agent/src/config/config.ts, packages/core/src/cidr.ts), so `helm template` and `helm
install` refuse exactly what would make the pods crash-loop. values.schema.json checks types and
misspelt keys; what it cannot say readably (a sum of durations, CIDR prefix lengths per family)
is said here, one sentence per bad value: the value's path, the value, and the fix.
*/}}

{{/*
Trims what JavaScript's String.prototype.trim() trims (the agent trims every value so): ASCII
whitespace, the Unicode space separators, LS, PS and the BOM. Sprig's trim uses Go's rules, which
differ (U+0085 is trimmed by Go, U+FEFF is not).
*/}}
{{- define "route-controller.trim" -}}
{{- $ws := `[\t\n\v\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]+` -}}
{{- regexReplaceAll (printf "^%s|%s$" $ws $ws) (toString .) "" -}}
{{- end -}}

{{/* A value as an error message shows it: quoted, escaped, and cut short if long. */}}
{{- define "route-controller.shown" -}}
{{- $text := toString . -}}
{{- if gt (len $text) 60 }}{{ printf "%s..." (trunc 60 $text) | quote }}{{ else }}{{ quote $text }}{{ end -}}
{{- end -}}

{{/*
The agent's parseDuration: one or more of <number><unit> (ms, s, m, h), summed, rounded to whole
milliseconds. Gives the milliseconds, "huge" for a number of 10 digits or more (more than 24h in any
unit), or "" when malformed.
*/}}
{{- define "route-controller.durationMs" -}}
{{- $text := include "route-controller.trim" . -}}
{{- if regexMatch `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` $text -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- $total := 0.0 -}}
{{- $huge := false -}}
{{- range regexFindAll `[0-9]+(\.[0-9]+)?(ms|s|m|h)` $text -1 -}}
{{- $number := regexFind `^[0-9]+(\.[0-9]+)?` . -}}
{{- if gt (len (regexReplaceAll `^0+` (regexFind `^[0-9]+` $number) "")) 9 }}{{ $huge = true }}{{ end -}}
{{- $total = addf $total (mulf (float64 $number) (get $units (trimPrefix $number .))) -}}
{{- end -}}
{{- if $huge }}huge{{ else }}{{ printf "%.0f" (round $total 0) }}{{ end -}}
{{- end -}}
{{- end -}}

{{/*
Why the agent's parseCidr refuses one Service CIDR (already trimmed), or "" when it accepts it:
the same checks in the same order. Host bits may be set (the agent clears them).
*/}}
{{- define "route-controller.cidrProblem" -}}
{{- $input := . -}}
{{- $example := dict "IPv4" "10.96.0.0/12" "IPv6" "fd00:10:96::/108" -}}
{{- if not (regexMatch `^[0-9A-Fa-f:.]+/(0|[1-9][0-9]{0,2})$` $input) -}}
{{- if contains "/" $input -}}
is not a CIDR: write an address and a prefix length, such as 10.96.0.0/12 or fd00:10:96::/108
{{- else -}}
has no prefix length: write an address and a prefix length, such as 10.96.0.0/12 or fd00:10:96::/108
{{- end -}}
{{- else -}}
{{- $address := regexReplaceAll `/[0-9]+$` $input "" -}}
{{- $prefix := atoi (regexFind `[0-9]+$` $input) -}}
{{- $family := ternary "IPv6" "IPv4" (contains ":" $address) -}}
{{- $range := ternary "/64 to /128 for IPv6" "/8 to /32 for IPv4" (eq $family "IPv6") -}}
{{- if and (eq $family "IPv6") (contains "." $address) -}}
is an IPv6 address with an embedded IPv4 one, which is not supported: write IPv4 ranges in dotted form, such as 10.96.0.0/12
{{- else if gt $prefix (ternary 128 32 (eq $family "IPv6")) -}}
has a prefix length that is too long: it must be {{ $range }}, such as {{ get $example $family }}
{{- else if not (include "route-controller.validAddress" (list $family $address)) -}}
{{- if eq $family "IPv4" -}}
: {{ $address }} is not an IPv4 address (four numbers from 0 to 255, without leading zeros), such as 10.96.0.0/12
{{- else -}}
: {{ $address }} is not an IPv6 address (eight groups of 1 to 4 hex digits, one :: at most), such as fd00:10:96::/108
{{- end -}}
{{- else if lt $prefix (ternary 64 8 (eq $family "IPv6")) -}}
is too broad for a Service range: the prefix length must be {{ $range }}; use the cluster's Service range (kubectl get servicecidrs)
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the address is one the agent's CIDR library (ip-cidr on ip-address) takes: for IPv4 four
decimal numbers 0 to 255 without leading zeros; for IPv6 (hex digits and colons only, by now) no
group longer than 4 digits, no ":::", no single colon at either end, one "::" at most standing for
at least one group, eight groups in all.
*/}}
{{- define "route-controller.validAddress" -}}
{{- $family := index . 0 -}}
{{- $address := index . 1 -}}
{{- if eq $family "IPv4" -}}
{{- $octet := `(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])` -}}
{{- if regexMatch (printf `^%s(\.%s){3}$` $octet $octet) $address }}true{{ end -}}
{{- else if not (regexMatch `[0-9a-fA-F]{5,}|:::|[^:]:$|^:[^:]` $address) -}}
{{- $halves := splitList "::" $address -}}
{{- $groups := list -}}
{{- range $halves }}{{ if ne . "" }}{{ $groups = concat $groups (splitList ":" .) }}{{ end }}{{ end -}}
{{- $wellFormed := true -}}
{{- range $groups }}{{ if not (regexMatch `^[0-9a-fA-F]{1,4}$` .) }}{{ $wellFormed = false }}{{ end }}{{ end -}}
{{- if and $wellFormed (or (and (eq (len $halves) 1) (eq (len $groups) 8)) (and (eq (len $halves) 2) (le (len $groups) 7))) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Why the agent refuses a listen address (already trimmed), or "" when it accepts it: "off", or
host:port with an optional host (IPv6 in brackets) and a port from 1 to 65535.
*/}}
{{- define "route-controller.listenProblem" -}}
{{- if ne . "off" -}}
{{- $port := regexFind `[0-9]{1,5}$` . -}}
{{- if or (not (regexMatch `^(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):[0-9]{1,5}$` .)) (lt (atoi $port) 1) (gt (atoi $port) 65535) -}}
is not an address: write host:port such as 127.0.0.1:9772, [::1]:9772 or :9772, or off
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Whether a listen address (host:port, checked before) can be bound on every node: every address
(empty, 0.0.0.0, [::]) or the loopback (127.0.0.0/8, [::1], localhost). Any other host names one
node's address, which no other node has.
*/}}
{{- define "route-controller.onEveryNode" -}}
{{- $host := regexReplaceAll `:[0-9]{1,5}$` . "" -}}
{{- if or (has $host (list "" "0.0.0.0" "[::]" "[::1]" "localhost")) (regexMatch `^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$` $host) -}}true{{- end -}}
{{- end -}}

{{/*
Checks one choice the agent takes only as written (lowercase, no case folding); "" is the agent's
default. Appends a sentence to $.problems when the value is refused.
*/}}
{{- define "route-controller.checkChoice" -}}
{{- $value := toString (default "" .value) -}}
{{- if and (ne $value "") (not (has (include "route-controller.trim" $value) .choices)) -}}
{{- $_ := set .into "problems" (append .into.problems (printf "%s %s is not %s: use one of %s%s." .path (include "route-controller.shown" $value) .what (join ", " .choices) (default "" .orElse))) -}}
{{- end -}}
{{- end -}}

{{- define "route-controller.validate" -}}
{{- $rc := .Values.routeController -}}
{{- $acc := dict "problems" list -}}

{{- /* image and its overrides: the image reference the pods pull */ -}}
{{- $registry := `^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$` -}}
{{- if not (regexMatch $registry (toString .Values.image.registry)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "image.registry %s is not a registry: write a host with an optional :port and path, without a scheme, such as local, localhost:5001 or ghcr.io/example." (include "route-controller.shown" .Values.image.registry))) -}}
{{- end -}}
{{- with $rc.image.registry -}}
{{- if not (regexMatch $registry (toString .)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.image.registry %s is not a registry: write a host with an optional :port and path, without a scheme, such as ghcr.io/example, or leave it empty to inherit image.registry." (include "route-controller.shown" .))) -}}
{{- end -}}
{{- end -}}
{{- if not (regexMatch `^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$` (toString .Values.image.tag)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "image.tag %s is not an image tag: use letters, digits, _, . and - (up to 128, not starting with . or -), such as 0.1.0, or leave it empty for the chart's appVersion." (include "route-controller.shown" .Values.image.tag))) -}}
{{- end -}}
{{- if not (regexMatch `^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$` (toString $rc.image.name)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.image.name %s is not an image name: use lowercase path components separated by /, such as route-controller or tools/route-controller." (include "route-controller.shown" $rc.image.name))) -}}
{{- end -}}

{{- /* the agent's settings */ -}}
{{- include "route-controller.checkChoice" (dict "into" $acc "path" "logLevel" "value" .Values.logLevel "what" "a log level" "choices" (list "fatal" "error" "warn" "info" "debug" "trace" "silent")) -}}
{{- include "route-controller.checkChoice" (dict "into" $acc "path" "routeController.logLevel" "value" $rc.logLevel "what" "a log level" "choices" (list "fatal" "error" "warn" "info" "debug" "trace" "silent") "orElse" ", or leave it empty to inherit logLevel") -}}
{{- include "route-controller.checkChoice" (dict "into" $acc "path" "routeController.firewallBackend" "value" $rc.firewallBackend "what" "a firewall backend" "choices" (list "auto" "nft" "iptables-nft" "iptables-legacy")) -}}
{{- include "route-controller.checkChoice" (dict "into" $acc "path" "routeController.blockAction" "value" $rc.blockAction "what" "a block action" "choices" (list "drop" "reject")) -}}

{{- $seen := dict -}}
{{- range $i, $entry := $rc.serviceCIDRs -}}
{{- $path := printf "routeController.serviceCIDRs[%d] %s" $i (include "route-controller.shown" $entry) -}}
{{- $cidr := include "route-controller.trim" $entry -}}
{{- if eq $cidr "" -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s is empty: remove it, or write a CIDR such as 10.96.0.0/12." $path)) -}}
{{- else if contains "," $cidr -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s holds more than one CIDR: write one CIDR per list item, such as --set 'routeController.serviceCIDRs={10.96.0.0/12,fd00:10:96::/108}'." $path)) -}}
{{- else if hasKey $seen $cidr -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s repeats routeController.serviceCIDRs[%s]: remove one of them." $path (get $seen $cidr))) -}}
{{- else -}}
{{- $_ := set $seen $cidr (toString $i) -}}
{{- with include "route-controller.cidrProblem" $cidr -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s%s%s." $path (ternary "" " " (hasPrefix ":" .)) .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- $sourceNames := list "servicecidr" "kubeadm" "node-args" "dry-run" -}}
{{- $seenSources := dict -}}
{{- range $i, $entry := (default list (default dict $rc.discovery).sources) -}}
{{- $path := printf "routeController.discovery.sources[%d] %s" $i (include "route-controller.shown" $entry) -}}
{{- $name := include "route-controller.trim" $entry -}}
{{- if contains "," $name -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s holds more than one source: write one source per list item, such as --set 'routeController.discovery.sources={servicecidr,kubeadm,node-args,dry-run}'." $path)) -}}
{{- else if not (has $name $sourceNames) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s is not a discovery source: use servicecidr, kubeadm, node-args or dry-run (each at most once; they are always asked in this order)." $path)) -}}
{{- else if hasKey $seenSources $name -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "%s repeats routeController.discovery.sources[%s]: remove one of them." $path (get $seenSources $name))) -}}
{{- else -}}
{{- $_ := set $seenSources $name (toString $i) -}}
{{- end -}}
{{- end -}}

{{- $resync := toString (default "" $rc.resyncInterval) -}}
{{- if ne $resync "" -}}
{{- $ms := include "route-controller.durationMs" $resync -}}
{{- if eq $ms "" -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.resyncInterval %s is not a duration: write numbers with units (ms, s, m, h), such as 30s, 2s or 1m30s." (include "route-controller.shown" $resync))) -}}
{{- else if or (eq $ms "huge") (lt (float64 $ms) 100.0) (gt (float64 $ms) 86400000.0) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.resyncInterval %s is out of range: write a duration from 100ms to 24h, such as 30s, 2s or 1m." (include "route-controller.shown" $resync))) -}}
{{- end -}}
{{- end -}}

{{- $lockWait := toString (default "" $rc.iptablesLockWait) -}}
{{- if ne $lockWait "" -}}
{{- $ms := include "route-controller.durationMs" $lockWait -}}
{{- if eq $ms "" -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.iptablesLockWait %s is not a duration: write whole seconds with a unit, such as 5s, 30s or 1m." (include "route-controller.shown" $lockWait))) -}}
{{- else if or (eq $ms "huge") (lt (float64 $ms) 1000.0) (gt (float64 $ms) 300000.0) (ne (mod (int64 $ms) 1000) 0) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.iptablesLockWait %s is out of range: write whole seconds from 1s to 5m, such as 5s, 30s or 1m." (include "route-controller.shown" $lockWait))) -}}
{{- end -}}
{{- end -}}

{{- /* metrics: where /metrics is served, and the monitoring objects */ -}}
{{- $m := default dict .Values.metrics -}}
{{- $sm := default dict $m.serviceMonitor -}}
{{- $given := toString (default "" $m.listenAddress) -}}
{{- $address := include "route-controller.metricsListenAddress" . -}}
{{- $shownAddress := ternary (include "route-controller.shown" $given) (printf "(empty: %s)" $address) (ne $given "") -}}
{{- /* A value of spaces alone is refused, as the agent refuses it, not taken for empty. */ -}}
{{- $listenProblem := include "route-controller.listenProblem" (ternary (include "route-controller.trim" $given) $address (ne $given "")) -}}
{{- if $listenProblem -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.listenAddress %s %s, or leave it empty for 127.0.0.1:9772." (include "route-controller.shown" $given) $listenProblem)) -}}
{{- else if ne $address "off" -}}
{{- if eq (atoi (regexFind `[0-9]+$` $address)) (int $rc.port) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.listenAddress %s takes port %d, which routeController.port already takes for /healthz and /readyz on every node address: give one of them another port, such as routeController.port=9771 or metrics.listenAddress=127.0.0.1:9773." $shownAddress (int $rc.port))) -}}
{{- end -}}
{{- if and (ne $address "off") (not (include "route-controller.onEveryNode" $address)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.listenAddress %s names one node's address: the DaemonSet runs on every node, and on the others that address cannot be bound. Use each node's loopback (127.0.0.1:%s or [::1]:%s) or every address (0.0.0.0:%s or :%s)." (include "route-controller.shown" $given) (regexFind `[0-9]+$` $address) (regexFind `[0-9]+$` $address) (regexFind `[0-9]+$` $address) (regexFind `[0-9]+$` $address))) -}}
{{- end -}}
{{- end -}}
{{- if $sm.enabled -}}
{{- if $listenProblem -}}
{{- else if eq $address "off" -}}
{{- $_ := set $acc "problems" (append $acc.problems "metrics.serviceMonitor.enabled true needs /metrics, and metrics.listenAddress is off: leave it empty (0.0.0.0:9772 then) or write a host:port Prometheus can reach.") -}}
{{- else if regexMatch `^(127\.[0-9.]*|localhost|\[::1\]):` $address -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.serviceMonitor.enabled true needs /metrics on an address Prometheus can reach, and metrics.listenAddress %s is loopback: leave it empty (0.0.0.0:9772 then) or write 0.0.0.0:<port>." (include "route-controller.shown" $given))) -}}
{{- end -}}
{{- end -}}
{{- $duration := `^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$` -}}
{{- range $key := list "interval" "scrapeTimeout" -}}
{{- $value := include "route-controller.trim" (default "" (get $sm $key)) -}}
{{- if and $value (not (regexMatch $duration $value)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.serviceMonitor.%s %s is not a Prometheus duration: write numbers with units (ms, s, m, h, d, w, y), such as 30s or 1m, or leave it empty for the Prometheus's own." $key (include "route-controller.shown" (get $sm $key)))) -}}
{{- end -}}
{{- end -}}
{{- $pr := default dict $m.prometheusRule -}}
{{- $alertNames := splitList ", " (include "route-controller.alertNames" .) -}}
{{- range $name, $override := (default dict $pr.alerts) -}}
{{- if not (has $name $alertNames) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.prometheusRule.alerts.%s is not one of the chart's alerts: use a name from the Runbook in the chart README (helm show readme), or add rules of your own with metrics.prometheusRule.additionalRules." $name)) -}}
{{- else -}}
{{- range $key := list "for" "keep_firing_for" -}}
{{- $value := toString (default "" (get (default dict $override) $key)) -}}
{{- if and $value (not (regexMatch $duration $value)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.prometheusRule.alerts.%s.%s %s is not a Prometheus duration: write numbers with units (ms, s, m, h, d, w, y), such as 30m." $name $key (include "route-controller.shown" $value))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $rule := (default list $pr.additionalRules) -}}
{{- if or (not (kindIs "string" $rule.expr)) (eq (len (compact (list (toString (default "" $rule.alert)) (toString (default "" $rule.record))))) 1 | not) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.prometheusRule.additionalRules[%d] is not a rule: write an alert (alert: <name>) or a recording rule (record: <name>), one of the two, with expr: <PromQL>." $i)) -}}
{{- end -}}
{{- end -}}
{{- with $pr.runbookURL -}}
{{- if not (regexMatch `^https?://[^ ]+$` (include "route-controller.trim" .)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.prometheusRule.runbookURL %s is not a URL: write where your team reads this chart's README, such as https://git.example.com/route-controller/charts/route-controller/README.md, or leave it empty." (include "route-controller.shown" .))) -}}
{{- end -}}
{{- end -}}
{{- with include "route-controller.trim" (default "" (default dict $m.dashboard).namespace) -}}
{{- if or (gt (len .) 63) (not (regexMatch `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` .)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "metrics.dashboard.namespace %s is not a namespace name: use lowercase letters, digits and - (up to 63), such as monitoring, or leave it empty for the release namespace." (include "route-controller.shown" .))) -}}
{{- end -}}
{{- end -}}

{{- $stale := default dict $rc.staleClusterIPs -}}
{{- if and (eq (toString $stale.events) "true") (gt (len (default list $rc.serviceCIDRs)) 0) -}}
{{- $_ := set $acc "problems" (append $acc.problems "routeController.staleClusterIPs.events true needs the Kubernetes API, which the agent uses only when routeController.serviceCIDRs is empty: empty routeController.serviceCIDRs so the agent discovers the Service CIDRs, or set routeController.staleClusterIPs.events=false.") -}}
{{- end -}}

{{- /* the pods */ -}}
{{- with $rc.priorityClassName -}}
{{- if or (gt (len (toString .)) 253) (not (regexMatch `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$` (toString .))) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.priorityClassName %s is not a PriorityClass name: use lowercase letters, digits, - and ., such as system-node-critical, or leave it empty for none." (include "route-controller.shown" .))) -}}
{{- end -}}
{{- end -}}
{{- range $kind := list "requests" "limits" -}}
{{- range $name, $quantity := (get (default dict $rc.resources) $kind) -}}
{{- if not (regexMatch `^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[mkMGTPE]i?|[numkMGTPE])?$` (toString $quantity)) -}}
{{- $_ := set $acc "problems" (append $acc.problems (printf "routeController.resources.%s.%s %s is not a Kubernetes quantity: write a number with an optional suffix, such as 100m, 64Mi or 1.5." $kind $name (include "route-controller.shown" $quantity))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- with $acc.problems -}}
{{- if eq (len .) 1 -}}
{{- fail (printf "\n%s" (first .)) -}}
{{- else -}}
{{- fail (printf "%d values are invalid:\n%s" (len .) (join "\n" .)) -}}
{{- end -}}
{{- end -}}

{{- /* Installing nothing is never silent: auto with a remote registry must be decided. */ -}}
{{- if and (kindIs "invalid" $rc.enabled) (not (include "route-controller.localRegistry" .)) -}}
{{- fail (printf "\nrouteController.enabled is null (auto), and auto installs route-controller only on a local cluster: image.registry %s is neither local nor localhost:<port>.\nSet routeController.enabled=true to install it anyway, or routeController.enabled=false to install nothing on purpose." (include "route-controller.shown" .Values.image.registry)) -}}
{{- end -}}
{{- end -}}
