# route-controller node agent image.
#
#   buildah build -t route-controller:0.1.0 .        (or: docker build -t route-controller:0.1.0 .)
#
# Configuration is by environment only (SERVICE_CIDRS, FIREWALL_BACKEND, BLOCK_ACTION, RESYNC_INTERVAL,
# LOG_LEVEL, CLEANUP_ON_EXIT, LISTEN_ADDRESS, KUBECONFIG); the Helm chart in charts/route-controller sets
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
# The root "prepare" script builds every package (tsc -b). Then the agent's production closure alone,
# resolved from the lockfile, with the workspace packages copied in (not linked). What Node never loads
# goes: TypeScript sources and declarations, source maps, build metadata, and the tests, benchmarks,
# examples and docs some dependencies publish.
RUN pnpm install --frozen-lockfile --offline \
 && pnpm --config.inject-workspace-packages=true --filter @route-controller/agent \
      deploy --prod --offline /opt/route-controller \
 && find /opt/route-controller -regextype posix-extended \
      -regex '.*/node_modules/(@[^/]+/)?[^/]+/(test|tests|__tests__|benchmarks?|examples?|docs|\.github)' \
      -prune -exec rm -rf {} + \
 && find /opt/route-controller -type f -regextype posix-extended \
      -regex '.*(\.[cm]?ts|\.map|\.tsbuildinfo|\.(test|spec)\.[cm]?js)$' -delete \
 && chmod 0755 /opt/route-controller/bin/route-controller.js \
 && /opt/route-controller/bin/route-controller.js --version

FROM ${BASE_IMAGE}
# Debian's nftables and iptables (iptables brings both the legacy and the nft flavour), without
# recommended packages, and without apt's lists, caches and logs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && nft --version && iptables-legacy --version && iptables-nft --version
COPY --from=build /opt/route-controller /opt/route-controller
RUN ln -s /opt/route-controller/bin/route-controller.js /usr/local/bin/route-controller \
 && route-controller --version

LABEL org.opencontainers.image.title="route-controller" \
      org.opencontainers.image.description="Drops forwarded packets to Kubernetes Service CIDRs so stale ClusterIPs cannot loop between a node and a workstation." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Root, for NET_ADMIN and NET_RAW: the chart adds those two capabilities and drops every other.
USER root
EXPOSE 9771
ENTRYPOINT ["route-controller", "run"]
CMD []
