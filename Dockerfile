# The Image Build Service's image: one image for the API (default command) and the worker
# (`node dist/worker/main.js`), as the Helm chart and docker-compose.yml run it.
# Offline, `bash infra/images/build.sh service` builds this file with both upstream bases replaced through named
# build contexts: node:24-bookworm-slim by a Debian bookworm root filesystem (debootstrap) with Node.js from the npm
# registry (infra/images/node/), and moby/buildkit by the local BuildKit's own buildctl.

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

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The node image's unprivileged user (uid 1000), which the chart's pod security context also runs as.
USER node
EXPOSE 8080
CMD ["node", "dist/api/main.js"]
