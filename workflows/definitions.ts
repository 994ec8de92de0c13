/**
 * The contract of the imageBuild workflow, shared by the API, the worker and the workflow itself: task queue,
 * workflow ids, queries, search attributes and the types that cross the Temporal boundary. Runtime imports here
 * are limited to the deterministic parts of the SDK, so the workflow bundle can include this file.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
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

export type BuildEngine = 'buildkit' | 'kaniko';

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
  /** A dependency build: the service writes the Dockerfile (lib/dependencies/dockerfile.ts); `dockerfile` is unused. */
  dependencies?: DependencySpec;
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
}

export interface ImageBuildResult {
  buildId: string;
  image: string;
  digest: string;
}

export interface BuildProgress {
  status: BuildStatus;
  digest?: string;
  error?: BuildErrorInfo;
}

export const progressQuery = defineQuery<BuildProgress>('progress');

/** Search attributes that let operators find builds in the Temporal UI by consumer, image and status. */
export const searchAttributes = {
  consumer: defineSearchAttributeKey('IbsConsumer', SearchAttributeType.KEYWORD),
  image: defineSearchAttributeKey('IbsImage', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('IbsStatus', SearchAttributeType.KEYWORD),
};

export function workflowIdForBuild(buildId: string): string {
  return `build-${buildId}`;
}
