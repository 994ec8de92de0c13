/**
 * The contract of the imageBuild workflow, shared by the API, the worker and the workflow itself: task queue,
 * workflow ids, queries, search attributes and the types that cross the Temporal boundary. Runtime imports here
 * are limited to the deterministic parts of the SDK, so the workflow bundle can include this file.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ResourceQuantities } from '../lib/config/quantity';
import type { DependencySpec } from '../lib/dependencies/dockerfile';

/**
 * The task queue the build activity runs on, beside the workflow's own queue: builds hold a worker's build slots
 * for minutes, so they queue apart from the bookkeeping activities, which never wait behind a build.
 */
export function buildTaskQueueFor(taskQueue: string): string {
  return `${taskQueue}-builds`;
}

export const BUILD_STATUSES = [
  'queued',
  'running',
  'scanning',
  'pushing',
  'signing',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];
export const TERMINAL_STATUSES: readonly BuildStatus[] = ['succeeded', 'failed', 'cancelled'];

/** The engines a build can run with; the spec schema, the configuration and the policy all read this list. */
export const BUILD_ENGINES = ['buildkit', 'kaniko'] as const;
export type BuildEngine = (typeof BUILD_ENGINES)[number];

/** What a consumer asks to build (the validated request body's `spec`). */
export interface BuildSpec {
  image: string;
  dockerfile: string;
  buildArgs: Record<string, string>;
  target?: string;
  labels: Record<string, string>;
  platforms: string[];
  engine?: BuildEngine;
  timeoutSeconds?: number;
  metadata?: Record<string, unknown>;
  /** The builder pod's requests and limits (Kubernetes quantities), within the operator's ceiling. */
  resources?: BuildResources;
  /** More tags of `image`'s repository (bare tags, normalized by the API), all pointing at the build's digest. */
  tags?: string[];
  /** Move a tag the registry already serves with another digest; without it such a build fails with `tag_exists`. */
  overwrite?: boolean;
  /** false: always build afresh, never answer from an identical earlier build (default true). */
  reuse?: boolean;
  /** A dependency build: the service writes the Dockerfile (lib/dependencies/dockerfile.ts); `dockerfile` is unused. */
  dependencies?: DependencySpec;
  /** JSON requests name their source instead of uploading it: a stored context, a stored image archive or an image URI. */
  context?: StoredArtifact;
  imageArchive?: StoredArtifact;
  sourceImage?: string;
}

/** An archive already in object storage: its key (under the consumer's prefix) and the hex sha256 it must have. */
export interface StoredArtifact {
  key: string;
  sha256: string;
}

/** Kubernetes quantities for a builder pod, e.g. { limits: { memory: '8G' } }: any subset of the operator's. */
export interface BuildResources {
  requests?: Partial<ResourceQuantities>;
  limits?: Partial<ResourceQuantities>;
}

export interface BuildErrorInfo {
  code: string;
  message: string;
  /**
   * What an operator needs to act on the failure, as short redacted strings: for `builder_oom_killed` the memory
   * limit and the step that was running, for `builder_evicted` the node and its reason, for
   * `builder_unschedulable` the scheduler's message, for `push_refused` the registry's error body (docs/errors.md).
   */
  evidence?: Record<string, string>;
}

/** Input of one imageBuild run. Holds references only, never credentials or archive bytes. */
export interface ImageBuildInput {
  buildId: string;
  /** Who asked for the build; labels builder pods. Absent in runs started before it was added. */
  consumer?: string;
  spec: BuildSpec;
  engine: BuildEngine;
  timeoutSeconds: number;
  context: { key: string; digest: string };
  /** Absent for builds from a context. */
  source?: BuildSource;
  /** Set by a retry that resumes after the build step: the image is already in the registry under `digest`. */
  resume?: ResumePoint;
  /**
   * When the API accepted this attempt (ms): its place in the fair queue. The API starts workflows after answering,
   * a few at a time, so their start times need not keep the order requests came in. Absent in runs started before
   * it was added, which use their start time.
   */
  acceptedAt?: number;
  /**
   * The Dockerfile's text as the API read it from this context to check it at request time. The worker's policy
   * check reads it from here rather than from the stored context, where it may sit after gigabytes of other files.
   * Absent when the API did not read it (a source the worker fetches), in a build started by the sweep, a replay or
   * a retry, for a Dockerfile over the size the API carries (api/builds/workflow-starter.ts), and in runs started
   * before it was added: the check then reads the stored context.
   */
  dockerfileText?: string;
}

/**
 * The steps of a build, in order. A failure records the step it happened in (and the digest, once pushed), so a
 * retry can resume from the failed step when the image is still in the registry. `build` runs the builder and
 * pushes by digest; `push` points the tags at the digest; `scan` and `sign` slot in around it.
 */
export const BUILD_STEPS = ['build', 'scan', 'push', 'sign'] as const;
export type BuildStep = (typeof BUILD_STEPS)[number];
/** The steps a retry can resume from: those that start from an image already pushed by digest. */
export const RESUMABLE_STEPS: readonly BuildStep[] = ['push', 'sign'];

export interface ResumePoint {
  step: BuildStep;
  digest: string;
}

/** Where a failed run stopped: the step, and the digest when the image was already pushed. */
export interface FailurePoint {
  step: BuildStep;
  digest?: string;
  /** The step this run resumed from, when it was a resumed retry. */
  resumedFrom?: BuildStep;
}

/**
 * Where a build's image comes from. Absent (runs started before sources existed) or `context`: built from the
 * stored context. The others push without a build.
 */
export type BuildSource =
  | { kind: 'context' }
  /** An accepted `docker save` / OCI layout upload; `digest` is the manifest or index the tag will point at. */
  | { kind: 'image-archive'; format: 'oci-layout' | 'docker-save'; archiveDigest: string; planKey: string; digest: string }
  /** An image copied from a registry (spec.sourceImage). */
  | { kind: 'image-uri'; reference: string };

/**
 * An image that exists and is ready to be pushed to the target: the one input of the push step, and what a scanner
 * gate in front of that step inspects.
 */
export type ReadyImage = (
  | { kind: 'stored'; planKey: string; digest: string }
  | { kind: 'registry'; registry: string; repository: string; digest: string }
) & {
  /** The scanner gate is on: scan it before the push (absent in runs recorded before sources were scanned). */
  gated?: boolean;
};

export interface ImageBuildResult {
  buildId: string;
  image: string;
  digest: string;
}

export interface BuildProgress {
  status: BuildStatus;
  /** The step under way (absent in runs started before steps were recorded). */
  step?: BuildStep;
  digest?: string;
  error?: BuildErrorInfo;
}

export const progressQuery = defineQuery<BuildProgress>('progress');

/** A step that starts inside an activity (the scanner after the engine, the push after the scan, signing). */
export interface BuildPhase {
  status: 'scanning' | 'pushing' | 'signing';
}

/**
 * Sent by an activity when its build moves on to a step the consumer sees as a status of its own, so the workflow's
 * progress and search attribute follow the real steps, not only the ones the workflow starts itself.
 */
export const buildPhaseSignal = defineSignal<[BuildPhase]>('buildPhase');

/** Search attributes that let operators find builds in the Temporal UI by consumer, image and status. */
export const searchAttributes = {
  consumer: defineSearchAttributeKey('IbsConsumer', SearchAttributeType.KEYWORD),
  image: defineSearchAttributeKey('IbsImage', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('IbsStatus', SearchAttributeType.KEYWORD),
};

export function workflowIdForBuild(buildId: string): string {
  return `build-${buildId}`;
}

/**
 * Waits for every step of a group, then fails with the first failure: unlike Promise.all, nothing of the group is
 * still running when the build goes on to record how it ended.
 */
export async function allSettled<T extends readonly unknown[]>(steps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
