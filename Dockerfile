# route-controller node agent image.
#
#   buildah build -t route-controller:0.1.0 .        (or: docker build -t route-controller:0.1.0 .)
#
# Configuration is by environment only (SERVICE_CIDRS, FIREWALL_BACKEND, BLOCK_ACTION, RESYNC_INTERVAL,
# LOG_LEVEL, CLEANUP_ON_EXIT, LISTEN_ADDRESS, METRICS_LISTEN_ADDRESS, IPTABLES_LOCK_WAIT, KUBECONFIG); the Helm chart in charts/route-controller sets
# them. The agent needs NET_ADMIN and NET_RAW, the host network and the host's /run/xtables.lock; it writes
# nothing to its root filesystem, so the chart runs it read-only.
#
# Node 24 LTS on Debian 12 (bookworm), pinned to a release: bookworm carries the nftables (1.0.6) and
# iptables (1.8.9, both flavours) the agent is tested against. Both stages use the same base, so the build
# and the runtime share one Node.
ARG BASE_IMAGE=node:24.21.0-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# pnpm at exactly the version package.json pins, then every package the lockfile names, into pnpm's store:
# this layer changes only with the lockfile.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
RUN npm install --global --no-fund --no-audit --no-update-notifier \
      "pnpm@$(node -p 'require("./package.json").packageManager.split("@")[1]')" \
 && pnpm fetch
COPY . .
# The root "prepare" script builds every package (tsc -b), then the agent's bundle (packages/agent/build.mjs):
# one minified ESM entry plus chunks loaded on demand, with their source maps. The runtime stage takes that
# and the bin shim; no node_modules, no pnpm store, no TypeScript, no lab.
RUN pnpm install --frozen-lockfile --offline \
 && mkdir -p /opt/route-controller/bin /opt/route-controller/dist \
 && cp packages/agent/bin/route-controller.cjs /opt/route-controller/bin/ \
 && cp -r packages/agent/dist/bundle /opt/route-controller/dist/bundle \
 && node -e 'const p = require("./packages/agent/package.json"); require("fs").writeFileSync("/opt/route-controller/package.json", JSON.stringify({ name: p.name, version: p.version, license: p.license, type: "module", private: true }, null, 2) + "\n")' \
 && cp LICENSE /opt/route-controller/ \
 && chmod 0755 /opt/route-controller/bin/route-controller.cjs \
 && /opt/route-controller/bin/route-controller.cjs --version

FROM ${BASE_IMAGE}
# Debian's nftables and iptables (iptables brings both the legacy and the nft flavour), without
# recommended packages, and without apt's lists, caches and logs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && nft --version && iptables-legacy --version && iptables-nft --version
COPY --from=build /opt/route-controller /opt/route-controller
# Node's compile cache (Node 22.1+), warmed here so a pod's start reuses compiled code: every chunk is
# compiled once with the V8 flags of the bin's shebang (flags that change code generation change the
# cache's key). At run time the root filesystem is read-only: entries are read, nothing is written.
ENV NODE_COMPILE_CACHE=/opt/route-controller/.compile-cache
RUN ln -s /opt/route-controller/bin/route-controller.cjs /usr/local/bin/route-controller \
 && flags="$(sed -n '1s/^#!.*env -S node//p' /opt/route-controller/bin/route-controller.cjs)" \
 && cd /opt/route-controller/dist/bundle \
 && node $flags --input-type=module \
      -e 'import { readdirSync } from "node:fs"; for (const f of readdirSync("chunks")) if (f.endsWith(".mjs")) await import(`./chunks/${f}`);' \
 && route-controller --help > /dev/null && route-controller --version \
 && ls /opt/route-controller/.compile-cache > /dev/null

LABEL org.opencontainers.image.title="route-controller" \
      org.opencontainers.image.description="Drops forwarded packets to Kubernetes Service CIDRs so stale ClusterIPs cannot loop between a node and a workstation." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Stack traces name chunk positions (dist/bundle/chunks/*.mjs:1:1234); the .map files beside them map them
# back to the sources. Set NODE_OPTIONS=--enable-source-maps to have Node do it (it costs memory: the first
# trace through the Kubernetes client parses its 1 MB map).
# Root, for NET_ADMIN and NET_RAW: the chart adds those two capabilities and drops every other.
USER root
EXPOSE 9771
ENTRYPOINT ["route-controller", "run"]
CMD []
