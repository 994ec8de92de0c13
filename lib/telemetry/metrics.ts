/**
 * The service's Prometheus metrics (prom-client). The API serves them on `GET /metrics`, the worker on its metrics
 * port (WORKER_METRICS_PORT). Names follow Prometheus conventions: an `ibs_` prefix, base units (seconds, bytes),
 * `_total` on counters, and only bounded label values: never a build id, an image or a URL. Consumers are
 * operator-configured tenants, so they are a label, capped at METRICS_MAX_CONSUMERS distinct values per process;
 * later ones count as `other` (docs/operations.md).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Builds that are not finished, as the database sees them: what the running/waiting gauges report. */
export interface BuildCounts {
  /** Builds whose workflow has started a step (running, scanning, pushing, signing), by status. */
  active: Partial<Record<string, number>>;
  /** Queued builds: accepted, waiting for a worker slot or for their first step. */
  waiting: number;
  /** Age of the oldest queued build, in seconds (0 when none waits). */
  oldestWaitingSeconds: number;
}

/** The labels a build's metrics carry; a null engine is the service's default one. */
export interface BuildLabels {
  engine: string | null;
  consumer: string;
}

export interface MetricsOptions {
  /** Distinct consumer label values kept per process (METRICS_MAX_CONSUMERS); the rest become `other`. */
  maxConsumers?: number;
  /** Process metrics (CPU, memory, event loop lag) under their standard names; off in tests that count series. */
  processMetrics?: boolean;
  /** The engine label of builds whose spec names none (IMAGE_BUILDER_BUILD_ENGINE). */
  defaultEngine?: string;
}

/** Phases of a build, each measured from the status that starts it to the next status (or the end). */
export const BUILD_PHASES = { queued: 'queued', running: 'build', scanning: 'scan', pushing: 'push', signing: 'sign' } as const;
export type BuildPhase = (typeof BUILD_PHASES)[keyof typeof BUILD_PHASES];

/** What registry requests ended with: bounded, and enough to tell refused credentials from an outage. */
export type RegistryOutcome = 'success' | 'unauthorized' | 'forbidden' | 'not_found' | 'throttled' | 'client_error' | 'server_error' | 'network_error';

export function registryOutcomeOf(status: number): RegistryOutcome {
  if (status < 400) return 'success';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 429) return 'throttled';
  return status >= 500 ? 'server_error' : 'client_error';
}

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const PHASE_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
const ACTIVITY_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600];

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly consumers = new Set<string>();
  private readonly maxConsumers: number;
  private readonly defaultEngine: string;
  private buildCounts?: () => Promise<BuildCounts>;

  readonly httpRequestDuration = new Histogram({
    name: 'ibs_http_request_duration_seconds',
    help: 'API requests by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  readonly buildsStarted = new Counter({
    name: 'ibs_builds_started_total',
    help: 'Builds whose first step started (queued to running), by engine and consumer.',
    labelNames: ['engine', 'consumer'] as const,
    registers: [this.registry],
  });

  readonly buildsFinished = new Counter({
    name: 'ibs_builds_finished_total',
    help: 'Builds that ended, by status (succeeded, failed, cancelled), error code (empty on success), engine and consumer.',
    labelNames: ['status', 'code', 'engine', 'consumer'] as const,
    registers: [this.registry],
  });

  readonly buildPhaseDuration = new Histogram({
    name: 'ibs_build_phase_duration_seconds',
    help: 'Time builds spent in each phase: queued, build, scan, push, sign.',
    labelNames: ['phase', 'engine'] as const,
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });

  readonly contextBytesReceived = new Counter({
    name: 'ibs_context_bytes_received_total',
    help: 'Bytes of build-context archives accepted by the API.',
    registers: [this.registry],
  });

  readonly registryRequests = new Counter({
    name: 'ibs_registry_requests_total',
    help: 'HTTP requests of the service to container registries, by method and outcome.',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly storageOperations = new Counter({
    name: 'ibs_storage_operations_total',
    help: 'Object-storage operations (contexts, logs, reports), by operation and outcome (success, error).',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly activityDuration = new Histogram({
    name: 'ibs_activity_duration_seconds',
    help: 'Temporal activity executions of the worker, by activity and outcome (completed, failed, cancelled).',
    labelNames: ['activity', 'outcome'] as const,
    buckets: ACTIVITY_BUCKETS,
    registers: [this.registry],
  });

  readonly suppressedErrors = new Counter({
    name: 'ibs_suppressed_errors_total',
    help: 'Errors the service logged and carried on after (build-log flush, pod sweep, log stream, watch), by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  private readonly buildsRunning = new Gauge({
    name: 'ibs_builds_running',
    help: 'Builds with a step under way, by status (running, scanning, pushing, signing).',
    labelNames: ['status'] as const,
    registers: [this.registry],
    collect: () => this.refreshBuildCounts(),
  });

  private readonly buildsWaiting = new Gauge({
    name: 'ibs_builds_waiting',
    help: 'Builds accepted and still queued.',
    registers: [this.registry],
    collect: () => this.refreshBuildCounts(),
  });

  private readonly oldestWaiting = new Gauge({
    name: 'ibs_builds_oldest_waiting_seconds',
    help: 'Age of the oldest queued build (0 when none waits).',
    registers: [this.registry],
    collect: () => this.refreshBuildCounts(),
  });

  /** One database read per scrape, shared by the three gauges that a scrape collects at once. */
  private refreshing?: Promise<void>;

  constructor(options: MetricsOptions = {}) {
    this.maxConsumers = options.maxConsumers ?? 100;
    this.defaultEngine = options.defaultEngine ?? 'buildkit';
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The consumer as a label value: itself while fewer than maxConsumers were seen, else `other`. */
  consumer(consumer: string | undefined): string {
    const name = consumer || 'unknown';
    if (this.consumers.has(name)) return name;
    if (this.consumers.size >= this.maxConsumers) return 'other';
    this.consumers.add(name);
    return name;
  }

  /** Where the running/waiting gauges read from (the database); without it they stay absent. */
  countBuildsWith(source: () => Promise<BuildCounts>): void {
    this.buildCounts = source;
  }

  /** A build moved from `from` (entered at `since`) to the next status: observe the phase it left. */
  observeTransition(build: BuildLabels & { from: string; since: Date | null }, to: string, now = new Date()): void {
    const engine = build.engine ?? this.defaultEngine;
    const phase = BUILD_PHASES[build.from as keyof typeof BUILD_PHASES];
    if (phase && build.since) this.buildPhaseDuration.observe({ phase, engine }, Math.max(0, (now.getTime() - build.since.getTime()) / 1000));
    if (build.from === 'queued' && !['succeeded', 'failed', 'cancelled'].includes(to)) this.buildsStarted.inc({ engine, consumer: this.consumer(build.consumer) });
  }

  /** A build ended: its last phase and its outcome (`code` empty when it succeeded). */
  observeFinished(build: BuildLabels & { from: string; since: Date | null }, status: string, code: string, now = new Date()): void {
    this.observeTransition(build, status, now);
    this.buildsFinished.inc({ status, code, engine: build.engine ?? this.defaultEngine, consumer: this.consumer(build.consumer) });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private refreshBuildCounts(): Promise<void> {
    this.refreshing ??= this.readBuildCounts().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async readBuildCounts(): Promise<void> {
    if (!this.buildCounts) return;
    const counts = await this.buildCounts();
    this.buildsRunning.reset();
    for (const status of ['running', 'scanning', 'pushing', 'signing']) this.buildsRunning.set({ status }, counts.active[status] ?? 0);
    this.buildsWaiting.set(counts.waiting);
    this.oldestWaiting.set(counts.oldestWaitingSeconds);
  }
}
