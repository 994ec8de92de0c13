import { describe, expect, it } from 'vitest';
import { registryHostOf, registryHostsOfDockerfile } from './base-images';

describe('registryHostOf', () => {
  it('applies Docker Hub defaulting', () => {
    expect(registryHostOf('busybox')).toBe('docker.io');
    expect(registryHostOf('library/busybox:1')).toBe('docker.io');
    expect(registryHostOf('index.docker.io/library/busybox')).toBe('docker.io');
    expect(registryHostOf('127.0.0.1:5000/ibs-test/busybox:1')).toBe('127.0.0.1:5000');
    expect(registryHostOf('localhost/x')).toBe('localhost');
    expect(registryHostOf('team.azurecr.io/base@sha256:abc')).toBe('team.azurecr.io');
  });
});

describe('registryHostsOfDockerfile', () => {
  it('finds FROM images with build arguments substituted, skipping stages and scratch', () => {
    const dockerfile = `# syntax=docker/dockerfile:1
ARG BASE=registry.example.com/base:1
ARG TOOLS
FROM --platform=$BUILDPLATFORM \${BASE} AS build
FROM build AS test
FROM \${TOOLS:-gcr.io/distroless/static} AS tools
FROM scratch
COPY --from=build /out /out
COPY --from=team.azurecr.io/assets:2 /a /a
COPY --from=0 /x /x
RUN --mount=type=cache,target=/c --mount=type=bind,from=quay.io/org/data:1,target=/d \\
    ls /d
`;
    expect(registryHostsOfDockerfile(dockerfile)).toEqual(['registry.example.com', 'gcr.io', 'team.azurecr.io', 'quay.io']);
    expect(registryHostsOfDockerfile(dockerfile, { BASE: 'busybox', TOOLS: '127.0.0.1:5001/tools:1' })).toEqual(['docker.io', '127.0.0.1:5001', 'team.azurecr.io', 'quay.io']);
  });

  it('ignores ARGs declared after the first FROM, as BuildKit does for FROM lines', () => {
    expect(registryHostsOfDockerfile('FROM alpine\nARG IMG=ghcr.io/x/y\nFROM ${IMG:-mirror.example/y}\n')).toEqual(['docker.io', 'mirror.example']);
  });
});
