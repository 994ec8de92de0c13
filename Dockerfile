# The Image Build Service's image: one image for the API (default command) and the worker
# (`node dist/worker/main.js`), as the Helm chart and docker-compose.yml run it.
# Offline, `bash infra/images/build.sh service` builds this file with both upstream bases replaced through named
# build contexts: node:24-bookworm-slim by a Debian bookworm root filesystem (debootstrap) with Node.js from the npm
# registry (infra/images/node/), moby/buildkit by the local BuildKit's own buildctl, and the notation stage by the
# notation CLI and plugins that infra/local compiled.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# A site whose npm registry is reached through a TLS-inspecting proxy passes its CA bundle as the optional build
# secret ca-certificates (infra/images/build.sh passes the building machine's); without it Node's own CAs apply.
RUN --mount=type=secret,id=ca-certificates,required=false \
    NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY lib ./lib
# Compiles to dist/ and prebuilds the workflow bundle, so workers start without webpack; then drops dev packages.
RUN npm run build && npm prune --omit=dev

# buildctl, for the local executor that drives a BuildKit daemon (docker-compose's buildkitd service).
FROM moby/buildkit:v0.28.1 AS buildkit

# The notation CLI and the AWS Signer plugin, for IMAGE_SIGNER_TYPE=notation (lib/signing/notation.ts), compiled from
# their Go modules. Offline, infra/images/build.sh replaces this whole stage by a named context holding the same two
# paths from infra/local's cache (install.d/notation.sh).
FROM golang:1.26-bookworm AS notation
ARG NOTATION_VERSION=v1.3.2
ARG AWS_SIGNER_PLUGIN_VERSION=v1.0.350
ENV CGO_ENABLED=0
RUN GOBIN=/usr/local/bin go install "github.com/notaryproject/notation/cmd/notation@${NOTATION_VERSION}" && \
    GOBIN=/tmp/plugin go install "github.com/aws/aws-signer-notation-plugin/cmd@${AWS_SIGNER_PLUGIN_VERSION}" && \
    mkdir -p /plugins/com.amazonaws.signer.notation.plugin && \
    mv /tmp/plugin/cmd /plugins/com.amazonaws.signer.notation.plugin/notation-com.amazonaws.signer.notation.plugin

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl
COPY --from=notation /usr/local/bin/notation /usr/local/bin/notation
# notation finds plugins only in its configuration folder: $XDG_CONFIG_HOME/notation/plugins, for the node user
# /home/node/.config/notation/plugins unless NOTATION_CONFIG_HOME points elsewhere.
COPY --from=notation --chown=1000:1000 /plugins/ /home/node/.config/notation/plugins/
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The node image's unprivileged user (uid 1000), which the chart's pod security context also runs as.
USER node
EXPOSE 8080
# A young generation of at most 4 MiB per semi-space (V8's default here is 16): a large upload's allocation rate
# grows a fresh API by ~40 MiB instead of ~90, with less CPU and no slower accepts (docs/benchmarks.md). The chart,
# docker-compose.yml and infra/local/up.sh run the API with the same flag.
CMD ["node", "--max-semi-space-size=4", "dist/api/main.js"]
