/**
 * The canonical fingerprint of a build request: two requests with the same fingerprint ask for the same image at
 * the same tags, so the later one can be answered by the earlier build (joined while it runs, or its result while
 * the registry still serves it). It covers what decides the image and where it goes (consumer, context digest,
 * Dockerfile path, build args, labels, target, platforms, engine, repository and the set of tags) and nothing that
 * does not (timeout, resources, metadata, overwrite, reuse). Map keys are sorted and tags are a set, so the same
 * request written in another order has the same fingerprint; platform order is kept (it orders the image index).
 */
import { createHash } from 'node:crypto';
import { buildTags } from '../registry/tags';
import type { BuildEngine, BuildSpec } from '../../workflows/definitions';

/** Bumped when what the fingerprint covers changes, so old fingerprints stop matching instead of matching wrongly. */
const FINGERPRINT_VERSION = 1;

export interface FingerprintInput {
  consumer: string;
  /** `sha256:<hex>` of the stored context archive. */
  contextDigest: string;
  spec: Pick<BuildSpec, 'image' | 'tags' | 'dockerfile' | 'buildArgs' | 'labels' | 'target' | 'platforms' | 'dependencies'>;
  /** The engine the build runs on (the spec's, or the service's default). */
  engine: BuildEngine;
}

export function buildFingerprint(input: FingerprintInput): string {
  const { target, tags } = buildTags(input.spec.image, input.spec.tags);
  const canonical = [
    FINGERPRINT_VERSION,
    input.consumer,
    input.contextDigest,
    input.spec.dockerfile,
    sortedEntries(input.spec.buildArgs),
    sortedEntries(input.spec.labels),
    input.spec.target ?? null,
    input.spec.platforms,
    input.engine,
    `${target.registry}/${target.repository}`,
    [...new Set(tags)].sort(),
    // A dependency build's Dockerfile is written from these (base image, requirements file, R packages).
    input.spec.dependencies ?? null,
  ];
  return `v${FINGERPRINT_VERSION}:${createHash('sha256').update(JSON.stringify(canonical)).digest('hex')}`;
}

function sortedEntries(map: Record<string, string> | undefined): [string, string][] {
  return Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
