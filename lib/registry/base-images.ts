/**
 * The registries a Dockerfile pulls from (FROM, COPY --from, RUN --mount=from), so that the builder gets the
 * credentials of exactly those and of the target. The Dockerfile is read by the same reader as the base-image
 * policy (lib/policy/dockerfile.ts), so what is checked and what gets credentials cannot drift apart.
 */
import { readDockerfile } from '../policy/dockerfile';

/** Docker Hub's registry host as image references imply it; docker config files key it as https://index.docker.io/v1/. */
const DOCKER_HUB = 'docker.io';

export function registryHostsOfDockerfile(dockerfile: string, buildArgs: Record<string, string> = {}): string[] {
  const images = readDockerfile(dockerfile, buildArgs).images.filter((i) => i.use !== 'syntax');
  return [...new Set(images.map((i) => registryHostOf(i.image)))];
}

/** The registry host of an image reference, with Docker's defaulting (a first component without . or : is a path). */
export function registryHostOf(image: string): string {
  const slash = image.indexOf('/');
  const first = slash > 0 ? image.slice(0, slash) : '';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return first === 'index.docker.io' ? DOCKER_HUB : first;
  return DOCKER_HUB;
}
