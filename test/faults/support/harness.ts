/**
 * The fault suite's private service: PostgreSQL, Temporal, MinIO, a registry behind the fault proxy and BuildKit of
 * its own (support/components.ts), the real API and worker entry points as child processes configured to use them,
 * and what a run checks afterwards: every accepted build reached exactly one final state that the API, PostgreSQL
 * and Temporal agree on, its tag serves the build's digest, and nothing temporary is left behind.
 */
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { randomBytes, randomInt } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'pg';
import { buildForm, contextOf } from '../../support/archives';
import { restartablePort } from '../../support/ports';
import { PrivatePostgres } from '../../support/private-postgres';
import { BASE_IMAGE, ensureBaseImage } from '../../support/registry';
import { ensureTrivyScannerImage, trivyGateSettings } from '../../support/scanner-image';
import { apiFetch, TEST_TOKENS_FILE } from '../../support/stack';
import { historyText } from '../../support/history';
import { ENCRYPTED_ENCODING } from '../../../lib/temporal/payload-encryption';
import {
  buildkitDaemon,
  Component,
  IBS_BIN,
  createBucket,
  minioServer,
  registryServer,
  s3ClientOf,
  serviceProcess,
  sleep,
  temporalServer,
  type BuildkitInstance,
  type MinioInstance,
  type RegistryInstance,
  type TemporalInstance,
} from './components';
import { FaultProxy } from './fault-proxy';
import { writeWorkflowBundle } from '../../../worker/build-workflow-bundle';
import { claimStack, releaseStack, STACK_PREFIX, sweepAbandonedStacks, unmountUnder } from './abandoned-stacks';

const run = promisify(execFile);
const NOTATION = join(IBS_BIN, 'notation');
/** notation's test key (`notation cert generate-test`) the services sign with. */
const SIGNING_KEY = 'ibs-faults';
export const FINAL = ['succeeded', 'failed', 'cancelled'];
const MANIFEST_ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

/** One build a client asked for: its Idempotency-Key, and its id once the API accepted it. */
export interface Submission {
  key: string;
  image: string;
  nonce: string;
  id?: string;
  /** Lines the RUN steps print, all of which the stored log must hold. */
  lines: string[];
}

/**
 * The steps of a build with the scanner gate and signing on, as the Build's status names them, and their names in
 * the table. Injections rotate through them, so that faults land in every step.
 */
export const STEPS = { running: 'build', scanning: 'scan', pushing: 'push', signing: 'sign' } as const;
export type Step = keyof typeof STEPS;
const STEP_ORDER: readonly string[] = ['queued', ...Object.keys(STEPS)];
/** How long after a step began its fault lands, at most: within the step's length here (scan, push and sign take well under a second). */
const STEP_SPAN_MS: Record<Step, number> = { running: 2_500, scanning: 100, pushing: 100, signing: 200 };
/** The kind (`Service.submit`) of the plain service's builds whose faults land in their `afterBuild` group. */
export const AFTER_BUILD_KIND = 'after';
/**
 * How long the fault proxy holds those builds' tag put: the workflow's `afterBuild` group (the `pushing` record beside
 * the tag step, then the slot's release and the success) otherwise takes some 30 ms, too short for a fault to land in
 * at random.
 */
const TAG_HOLD_MS = 3_000;

/** One row of the table. */
export interface FaultRow {
  kind: string;
  injections: number;
  /** Injections by the step (table name, or the status) the build they aimed at was in at that moment. */
  at: Record<string, number>;
  builds: number;
  lost: number;
  duplicated: number;
  orphans: number;
  /** The error code of each failed build (their number is the table's "failed builds"). */
  failedCodes: string[];
  wrongTags: number;
  lostLogLines: number;
  /** Succeeded builds of a signing service whose digest has no verified signature in the registry. */
  unsigned: number;
  /** Builds of a sealing service whose history was read without the key. */
  sealed: number;
  /** Those whose history showed their Dockerfile, or held no sealed payload. */
  inClear: number;
  notes: string[];
}

/** The small build each submission runs: a couple of short RUN steps that print nonce-marked lines over ~`seconds`. */
export function dockerfileFor(nonce: string, base: string, seconds = 4): { dockerfile: string; lines: string[] } {
  const steps = Math.max(2, Math.round(seconds / 0.5));
  const lines = [`first ${nonce}`, ...Array.from({ length: steps }, (_, i) => `line-${i + 1} ${nonce}`)];
  return {
    dockerfile: [
      `FROM ${base}`,
      // The printed lines must not appear in the step's command, which BuildKit's progress output shows too.
      `RUN echo "first" "${nonce}" && echo ${nonce} > /nonce`,
      `RUN i=1; while [ $i -le ${steps} ]; do echo "line-$i ${nonce}"; sleep 0.5; i=$((i+1)); done`,
      '',
    ].join('\n'),
    lines,
  };
}

export interface ServiceOptions {
  /** The registry the builds push to (host:port) and the base image they build FROM. */
  targetRegistry: string;
  baseImage: string;
  storage: { endpoint: string; user: string; password: string; bucket: string };
  /** The scanner gate (trivy's offline secret scan) before the push and notation signing after it. */
  scanAndSign?: boolean;
  /** Temporal payloads sealed with the stack's key (TEMPORAL_PAYLOAD_ENCRYPTION_KEYS), and the sealed workflow bundle. */
  sealed?: boolean;
  extraEnv?: Record<string, string>;
}

/** The API and worker entry points against the private components; several services may share them. */
export class Service {
  api!: Component;
  worker!: Component;
  apiUrl!: string;
  readonly taskQueue = `faults-${process.pid}-${randomBytes(3).toString('hex')}`;
  /** TMPDIR of the API and of the worker: where uploads are spooled and contexts unpacked. */
  readonly scratch: string;
  /** Each kind's first step of the rotation, drawn at its first injection. */
  private readonly firstStep = new Map<string, number>();

  constructor(
    private readonly stack: FaultStack,
    readonly name: string,
    readonly options: ServiceOptions,
  ) {
    this.scratch = join(stack.dir, `${name}-tmp`);
    mkdirSync(this.scratch, { recursive: true });
  }

  async start(): Promise<void> {
    // The fault kinds restart the API and the worker while clients dial them.
    const port = await restartablePort();
    this.apiUrl = `http://127.0.0.1:${port}`;
    const { storage } = this.options;
    const env: Record<string, string> = {
      API_HOST: '127.0.0.1',
      API_PORT: String(port),
      POSTGRES_HOST: '127.0.0.1',
      POSTGRES_PORT: String(this.stack.postgres.port),
      POSTGRES_USER: this.stack.postgres.user,
      POSTGRES_DB: 'postgres',
      TEMPORAL_ADDRESS: this.stack.temporal.address,
      TEMPORAL_TASK_QUEUE: this.taskQueue,
      MINIO_SERVER_HOST: storage.endpoint,
      MINIO_SERVER_ROOT_USER: storage.user,
      MINIO_SERVER_ROOT_PASSWORD: storage.password,
      LOGS_BUCKET: storage.bucket,
      BUILDKIT_HOST: this.stack.buildkit.host,
      AUTH_TOKENS_FILE: TEST_TOKENS_FILE,
      TARGET_REGISTRY_ALLOWLIST: this.options.targetRegistry,
      TMPDIR: this.scratch,
      WORKFLOW_BUNDLE_PATH: this.options.sealed ? this.stack.sealedWorkflowBundle : this.stack.workflowBundle,
      ...(this.options.sealed ? { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: this.stack.payloadKey } : {}),
      LOG_LEVEL: 'info',
      // Every worker on this machine needs metrics ports of its own (the defaults are the developer's worker's).
      WORKER_METRICS_PORT: String(await restartablePort()),
      TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${await restartablePort()}`,
      ...(this.options.scanAndSign ? this.stack.scanAndSignEnv(this.name, storage.bucket) : {}),
      ...this.options.extraEnv,
    };
    this.api = serviceProcess(`${this.name}-api`, 'api/main.ts', env, 'API listening', join(this.stack.dir, `${this.name}-api.log`));
    this.worker = serviceProcess(`${this.name}-worker`, 'worker/main.ts', env, 'worker polling', join(this.stack.dir, `${this.name}-worker.log`));
    await this.api.start();
    await this.worker.start();
  }

  async close(): Promise<void> {
    await this.api?.close();
    await this.worker?.close();
  }

  /** The form of a new build, with its Idempotency-Key and what it will print. */
  async newSubmission(kind: string, seconds = 4, pad = 0): Promise<{ submission: Submission; body: FormData }> {
    const nonce = `${kind}-${randomBytes(5).toString('hex')}`;
    const { dockerfile, lines } = dockerfileFor(nonce, this.options.baseImage, seconds);
    const image = `${this.options.targetRegistry}/faults/${nonce}:v1`;
    const files: Record<string, string | Buffer> = { Dockerfile: dockerfile };
    // Incompressible padding makes an upload that lasts long enough to be cut.
    if (pad > 0) files['pad.bin'] = randomBytes(pad);
    const body = buildForm({ image }, await contextOf(files));
    return { submission: { key: `faults-${nonce}`, image, nonce, lines }, body };
  }

  post(submission: Submission, body: RequestInit['body'], init: RequestInit = {}): Promise<Response> {
    return apiFetch(this.apiUrl, '/v1/builds', {
      method: 'POST',
      body,
      ...init,
      headers: { 'idempotency-key': submission.key, ...(init.headers as Record<string, string> | undefined) },
    });
  }

  /** Submits until the API accepts (retrying with the same key through outages); returns the build id. */
  async submit(kind: string, seconds = 4): Promise<Submission> {
    const { submission, body } = await this.newSubmission(kind, seconds);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const res = await this.post(submission, body).catch((err: unknown) => err as Error);
      if (!(res instanceof Error) && (res.status === 202 || res.status === 200)) {
        submission.id = ((await res.json()) as { id: string }).id;
        return submission;
      }
      const why = res instanceof Error ? res.message : `${res.status} ${await res.text()}`;
      if (!(res instanceof Error) && res.status < 500 && res.status !== 429) throw new Error(`the API refused ${submission.key}: ${why}`);
      if (Date.now() > deadline) throw new Error(`the API never accepted ${submission.key}: ${why}`);
      await sleep(1_000);
    }
  }

  /**
   * Waits for a random point of the build's `injection`-th step (the steps rotate: build, scan, push, sign, from a
   * step drawn at random for each kind, so that runs with fewer injections than steps still reach each of them): until
   * the build reached the step, then a random time within the step's usual length. Counts in `row` the step the
   * build really was in then (a quick step may be over), so the table shows where the faults landed. `only` narrows
   * the rotation to some steps, with their own lengths (a builder pod exists only while it builds and scans).
   * Answers the step counted.
   */
  async atRandomPoint(row: FaultRow, id: string, injection: number, only?: { steps: Step[]; spanMs: Record<Step, number> }): Promise<string> {
    const steps = only?.steps ?? ((this.options.scanAndSign ? Object.keys(STEPS) : ['running']) as Step[]);
    if (!this.firstStep.has(row.kind)) this.firstStep.set(row.kind, randomInt(steps.length));
    const step = steps[(injection + this.firstStep.get(row.kind)!) % steps.length]!;
    await this.untilStep(id, step);
    await sleep(randomBetween(0, (only?.spanMs ?? STEP_SPAN_MS)[step]));
    const at = await this.step(id);
    row.at[at] = (row.at[at] ?? 0) + 1;
    return at;
  }

  /** The step the build is in now (build, scan, push, sign), or its status outside them (queued, a final state). */
  async step(id: string): Promise<string> {
    const status = await this.recordedStatus(id);
    return STEPS[status as Step] ?? status;
  }

  /**
   * Waits for a random point of an afterBuild submission's `afterBuild` group (a plain service's build, its tag held
   * by the fault proxy): once its `pushing` record is in, a random time within the hold. Counted in `row` as
   * `afterBuild` when the build was still there.
   */
  async atAfterBuild(row: FaultRow, id: string): Promise<string> {
    const at = await this.inAfterBuild(id);
    row.at[at] = (row.at[at] ?? 0) + 1;
    return at;
  }

  /** The same point, uncounted: answers `afterBuild`, or the build's status when it was no longer there. */
  async inAfterBuild(id: string): Promise<string> {
    await this.untilStep(id, 'pushing');
    await sleep(randomBetween(0, TAG_HOLD_MS - 200));
    const status = await this.recordedStatus(id);
    return status === 'pushing' ? 'afterBuild' : status;
  }

  /** Waits (five minutes at most) until the build reached `step` or went past the steps (a final state). */
  private async untilStep(id: string, step: Step): Promise<void> {
    const deadline = Date.now() + 300_000;
    let status = await this.recordedStatus(id);
    while (STEP_ORDER.includes(status) && STEP_ORDER.indexOf(status) < STEP_ORDER.indexOf(step) && Date.now() < deadline) {
      await sleep(25);
      status = await this.recordedStatus(id);
    }
  }

  /** The status PostgreSQL holds for the build ('unknown' while it cannot be read). */
  private async recordedStatus(id: string): Promise<string> {
    const { rows } = await this.stack.pool.query<{ status: string }>('SELECT status FROM builds WHERE id = $1', [id]).catch(() => ({ rows: [] }));
    return rows[0]?.status ?? 'unknown';
  }

  async status(id: string): Promise<Record<string, unknown> | undefined> {
    const res = await apiFetch(this.apiUrl, `/v1/builds/${id}`).catch(() => undefined);
    if (!res?.ok) return undefined;
    return (await res.json()) as Record<string, unknown>;
  }

  /** Waits until the build reached a final state (or the deadline: the check afterwards counts it as lost). */
  async waitFinal(id: string, timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !FINAL.includes((await this.status(id))?.status as string)) await sleep(1_000);
  }

  async storedLog(id: string): Promise<string> {
    const res = await apiFetch(this.apiUrl, `/v1/builds/${id}/logs`);
    return res.ok ? res.text() : '';
  }
}

export class FaultStack {
  readonly dir = mkdtempSync(join(tmpdir(), STACK_PREFIX));
  postgres!: PrivatePostgres;
  temporal!: TemporalInstance;
  minio!: MinioInstance;
  registry!: RegistryInstance;
  proxy!: FaultProxy;
  buildkit!: BuildkitInstance;
  service!: Service;
  pool!: Pool;
  temporalClient!: Client;
  private readonly services: Service[] = [];
  private plain?: Promise<Service>;
  private queued?: Promise<Service>;
  /** Leftovers already counted as orphans by an earlier kind. */
  private readonly counted = new Set<string>();
  readonly workflowBundle = join(this.dir, 'workflow-bundle.js');
  /** The bundle of the sealing service's worker: its workflows' failures are sealed too (worker/build-workflow-bundle.ts). */
  readonly sealedWorkflowBundle = join(this.dir, 'workflow-bundle-sealed.js');
  /** The key the sealing service seals its Temporal payloads with; the suite's own Temporal client does not have it. */
  readonly payloadKey = `faults:${randomBytes(32).toString('base64')}`;
  /** The trivy scanner image of the gate (in the shared registry) and notation's defaults folder with a test key. */
  private scannerImage!: string;
  private readonly notationDefaults = join(this.dir, 'notation-defaults');
  private readonly cgroupsAtStart = new Set(scannerCgroups());

  async start(): Promise<void> {
    // A run stopped by a signal never reached its afterAll: its stack is stopped and removed here.
    const swept = await sweepAbandonedStacks();
    if (swept.length > 0) console.warn(`removed the private stacks of fault runs that did not end: ${swept.join(', ')}`);
    claimStack(this.dir);
    await ensureBaseImage();
    this.scannerImage = await ensureTrivyScannerImage();
    await run(NOTATION, ['cert', 'generate-test', '--default', SIGNING_KEY], { env: { ...process.env, XDG_CONFIG_HOME: this.notationDefaults } });
    this.postgres = await PrivatePostgres.create();
    claimStack(this.dir, [this.postgres.dataDir]);
    this.temporal = await temporalServer(this.dir);
    this.minio = await minioServer(this.dir);
    this.registry = await registryServer(this.dir);
    await Promise.all([this.temporal.component.start(), this.minio.component.start(), this.registry.component.start()]);
    await createBucket(this.minio);
    this.proxy = await FaultProxy.start(this.registry.address);
    // The tag step of an afterBuild submission: the service's own registry client (not BuildKit, which pushes by
    // digest) putting the tag's manifest.
    const afterBuildTag = new RegExp(`^/v2/faults/${AFTER_BUILD_KIND}-[0-9a-f]+/manifests/v1$`);
    this.proxy.hold = (req) =>
      req.method === 'PUT' && afterBuildTag.test(req.url ?? '') && !/buildkit|containerd/i.test(req.headers['user-agent'] ?? '') ? TAG_HOLD_MS : 0;
    const baseRegistry = BASE_IMAGE.slice(0, BASE_IMAGE.indexOf('/'));
    this.buildkit = buildkitDaemon(this.dir, [baseRegistry, this.registry.address, this.proxy.address]);
    await this.buildkit.component.start();
    // Bundled once (without the tracing interceptors: the suite's workers export no traces): a worker that bundles its
    // workflows at every restart spends tens of seconds on a busy machine.
    const workflowsPath = join(__dirname, '..', '..', '..', 'workflows', 'index.ts');
    await writeWorkflowBundle(this.workflowBundle, { traced: false, workflowsPath });
    await writeWorkflowBundle(this.sealedWorkflowBundle, { traced: false, sealed: true, workflowsPath });
    this.pool = new Pool({ host: '127.0.0.1', port: this.postgres.port, user: this.postgres.user, database: 'postgres', max: 2 });
    this.pool.on('error', () => undefined); // idle connections die with the PostgreSQL faults
    this.service = await this.addService('svc', {
      targetRegistry: this.proxy.address,
      baseImage: BASE_IMAGE,
      storage: this.minioStorage(),
      scanAndSign: true,
    });
    this.temporalClient = new Client({ connection: await Connection.connect({ address: this.temporal.address }) });
  }

  /**
   * A service's settings for the scanner gate (reports to the private MinIO) and for signing with the test key: its
   * own writable notation folder, prepared by the worker from the shared defaults, as in the chart.
   */
  scanAndSignEnv(service: string, bucket: string): Record<string, string> {
    return {
      ...trivyGateSettings(this.scannerImage, `s3://${bucket}/scan-reports`, 'faults-scanner-canary'),
      IMAGE_SIGNER_TYPE: 'notation',
      NOTATION_PROFILE: SIGNING_KEY,
      NOTATION_PLUGIN: 'local',
      NOTATION_REGION: 'us-east-1',
      NOTATION_CLI_PATH: NOTATION,
      NOTATION_CONFIG_HOME: join(this.dir, `${service}-notation`),
      NOTATION_DEFAULTS_DIR: join(this.notationDefaults, 'notation'),
    };
  }

  /** Starts whatever a failed kind left stopped, so that the next kind starts from a whole stack. */
  async ensureRunning(): Promise<void> {
    for (const c of [this.temporal.component, this.minio.component, this.registry.component, this.buildkit.component]) {
      if (!c.running) await c.start();
    }
    if (!(await this.pool.query('SELECT 1').then(() => true, () => false))) await this.postgres.start();
    this.proxy.faulty = false;
    for (const service of this.services) {
      if (!service.api.running) await service.api.start();
      if (!service.worker.running) await service.worker.start();
    }
  }

  /** The stack's own MinIO, as a service's storage settings. */
  private minioStorage(): ServiceOptions['storage'] {
    return { endpoint: this.minio.endpoint, user: this.minio.user, password: this.minio.password, bucket: this.minio.bucket };
  }

  /**
   * A second service on this stack's components that neither scans nor signs, started at its first use and shared
   * by the kinds after it: its builds move their tags and record their success in the workflow's `afterBuild` group,
   * a path the signing service's builds never take. It seals its Temporal payloads, so every kind that sends it
   * builds also runs them sealed, and checks that their histories show nothing in the clear.
   */
  async plainService(): Promise<Service> {
    this.plain ??= this.addService('plain', {
      targetRegistry: this.proxy.address,
      baseImage: BASE_IMAGE,
      storage: this.minioStorage(),
      sealed: true,
    });
    return this.plain;
  }

  /**
   * A service like the plain one whose fair queue grants one slot at a time (BUILD_MAX_CONCURRENT=1), on a task queue
   * of its own: several builds sent at once wait in its queue in PostgreSQL.
   */
  async queuedService(): Promise<Service> {
    this.queued ??= this.addService('queued', {
      targetRegistry: this.proxy.address,
      baseImage: BASE_IMAGE,
      storage: this.minioStorage(),
      extraEnv: { BUILD_MAX_CONCURRENT: '1' },
    });
    return this.queued;
  }

  async addService(name: string, options: ServiceOptions): Promise<Service> {
    const service = new Service(this, name, options);
    this.services.push(service);
    await service.start();
    return service;
  }

  async close(): Promise<void> {
    for (const service of this.services) await service.close().catch(() => undefined);
    await this.temporalClient?.connection.close().catch(() => undefined);
    await this.pool?.end().catch(() => undefined);
    await this.proxy?.close();
    for (const c of [this.buildkit?.component, this.temporal?.component, this.minio?.component, this.registry?.component]) await c?.close();
    await this.postgres?.stop();
    // A BuildKit daemon killed mid-build may leave its snapshot mounts: unmounted before the folder goes.
    await unmountUnder([this.dir]);
    // A kept folder is no longer claimed: it holds nothing running, and the next run's sweep leaves it alone.
    if (process.env.FAULT_KEEP_SCRATCH) releaseStack(this.dir);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Waits until every accepted submission reached a final state, then checks the invariants and fills the row.
   * `registryFor` is where a build's tag is read back from (the real registry, not the fault proxy).
   */
  async check(
    row: FaultRow,
    service: Service,
    submissions: Submission[],
    options: { registryFor?: (image: string) => string; checkLogs?: boolean; timeoutMs?: number; extraOrphans?: () => Promise<string[]> } = {},
  ): Promise<void> {
    const registryFor = options.registryFor ?? ((image: string) => image.replace(this.proxy.address, this.registry.address));
    row.builds += submissions.length;
    const deadline = Date.now() + (options.timeoutMs ?? 300_000);
    const finals = new Map<string, Record<string, unknown>>();
    for (const s of submissions) {
      if (!s.id) {
        row.lost++;
        row.notes.push(`${s.key}: never accepted`);
        continue;
      }
      for (;;) {
        const build = await service.status(s.id);
        if (build && FINAL.includes(build.status as string)) {
          finals.set(s.id, build);
          break;
        }
        if (Date.now() > deadline) {
          row.lost++;
          row.notes.push(`${s.id}: still ${String(build?.status)} at the deadline`);
          break;
        }
        await sleep(1_000);
      }
    }
    for (const s of submissions) {
      const build = s.id ? finals.get(s.id) : undefined;
      if (!s.id || !build) continue;
      const status = build.status as string;
      if (status !== 'succeeded') {
        const error = (build.error ?? {}) as { code?: string; message?: string };
        row.failedCodes.push(error.code ?? status);
        // The code and the end of the message: buildctl's closing error is its last line.
        row.notes.push(`${s.id}: ${status} ${error.code ?? ''}: …${String(error.message ?? '').slice(-400)}`);
      }
      // PostgreSQL: exactly one record for the submission's key, in the state the API reports.
      const { rows } = await this.pool.query<{ id: string; status: string; digest: string | null }>(
        'SELECT id, status, digest FROM builds WHERE idempotency_key = $1', [s.key]);
      if (rows.length > 1) {
        row.duplicated += rows.length - 1;
        row.notes.push(`${s.key}: ${rows.length} build records`);
      }
      if (rows[0]?.id !== s.id || rows[0]?.status !== status) {
        row.lost++;
        row.notes.push(`${s.id}: PostgreSQL says ${JSON.stringify(rows[0] ?? null)}, the API ${status}`);
      }
      // Temporal: the build's workflow is closed, and completed when the build succeeded. The final record is written
      // by a local activity inside the workflow's last task, so a worker killed between the two leaves the workflow
      // running until that task times out and another worker completes it: it gets a minute to agree.
      const workflowStatus = await this.closedWorkflowStatus(`build-${s.id}`, 60_000);
      if (!workflowStatus || workflowStatus === 'RUNNING' || (status === 'succeeded' && workflowStatus !== 'COMPLETED')) {
        row.lost++;
        row.notes.push(`${s.id}: Temporal says ${String(workflowStatus)}, the API ${status}`);
      }
      // The registry: the tag serves the build's digest (and none when the build did not succeed and never pushed).
      const served = await manifestDigest(registryFor(s.image));
      if (status === 'succeeded' && served !== build.digest) {
        row.wrongTags++;
        row.notes.push(`${s.id}: ${s.image} serves ${String(served)}, the build says ${String(build.digest)}`);
      }
      // A build that failed after its push (signing) names the digest it pushed in its attempt's record.
      const attempts = (build.attempts ?? []) as { digest?: string }[];
      const pushed = build.digest ?? attempts[attempts.length - 1]?.digest;
      if (status !== 'succeeded' && served && served !== pushed) {
        row.wrongTags++;
        row.notes.push(`${s.id}: ${status} but ${s.image} serves ${served}`);
      }
      if (service.options.scanAndSign && status === 'succeeded' && !(await signedInRegistry(registryFor(s.image), build))) {
        row.unsigned++;
        row.notes.push(`${s.id}: succeeded, but ${String(build.digest)} has no verified signature in the registry (${JSON.stringify(build.signature ?? null)})`);
      }
      if (service.options.sealed) {
        row.sealed++;
        const leaked = await this.dockerfileInClear(s);
        if (leaked) {
          row.inClear++;
          row.notes.push(`${s.id}: its Temporal history, read without the key, ${leaked}`);
        }
      }
      if (options.checkLogs && status === 'succeeded') {
        const log = await service.storedLog(s.id);
        const missing = s.lines.filter((line) => !log.includes(line));
        row.lostLogLines += missing.length;
        if (missing.length > 0) row.notes.push(`${s.id}: log lacks ${missing.length} lines, e.g. "${missing[0]}"`);
      }
    }
    // What an earlier kind left is that kind's: counted once, where it was left.
    const orphans = [...this.leftovers(service), ...(await this.openUploads()), ...this.newScannerCgroups(), ...((await options.extraOrphans?.()) ?? [])]
      .filter((o) => !this.counted.has(o));
    orphans.forEach((o) => this.counted.add(o));
    row.orphans += orphans.length;
    if (orphans.length > 0) row.notes.push(`left behind: ${orphans.slice(0, 5).join(', ')}`);
  }

  /**
   * What a sealing service's build shows of itself in its Temporal history read without the key: its Dockerfile's
   * `echo <nonce> > /nonce` (the workflow's input carries the Dockerfile; the image's name, which has the nonce too, is
   * a search attribute and stays clear by design), or no sealed payload at all. Undefined when all is sealed.
   */
  private async dockerfileInClear(s: Submission): Promise<string | undefined> {
    const history = historyText(await this.temporalClient.workflow.getHandle(`build-${s.id}`).fetchHistory());
    if (history.includes(`echo ${s.nonce} > /nonce`)) return 'shows its Dockerfile';
    if (!history.includes(ENCRYPTED_ENCODING)) return 'has no sealed payload';
    return undefined;
  }

  /** The workflow's status once it is no longer RUNNING, or RUNNING (or undefined: not found) after `withinMs`. */
  private async closedWorkflowStatus(workflowId: string, withinMs: number): Promise<string | undefined> {
    const until = Date.now() + withinMs;
    for (;;) {
      const workflow = await this.temporalClient.workflow.getHandle(workflowId).describe().catch(() => undefined);
      const status = workflow?.status.name;
      if (status !== 'RUNNING' || Date.now() > until) return status;
      await sleep(1_000);
    }
  }

  /** What the API and the worker left in their scratch folders once no build runs. */
  leftovers(service: Service): string[] {
    return readdirSync(service.scratch)
      .filter((name) => !name.startsWith('tsx-')) // tsx's compile cache
      .filter((name) => name !== 'ibs-scanner-images') // the scanner images, unpacked once per digest
      // The build-log spool folder stays; what it holds is what has not reached object storage yet.
      .flatMap((name) => (name === 'ibs-build-logs' ? readdirSync(join(service.scratch, name)).map((f) => `${name}/${f}`) : [name]))
      .map((name) => `${service.name}-tmp/${name}`);
  }

  /** Scanner containers' cgroups that were not there when the suite started: runc removes them as it deletes a container. */
  private newScannerCgroups(): string[] {
    return scannerCgroups().filter((c) => !this.cgroupsAtStart.has(c));
  }

  /** Multipart uploads to the private MinIO that were started and never completed nor aborted. */
  async openUploads(): Promise<string[]> {
    const client = s3ClientOf(this.minio);
    try {
      const res = await client.send(new ListMultipartUploadsCommand({ Bucket: this.minio.bucket }));
      return (res.Uploads ?? []).map((u) => `upload ${u.Key}`);
    } finally {
      client.destroy();
    }
  }
}

/** The cgroups of scanner containers (runc's /ibs-scanner/<id>: on cgroup v1 under each controller, on v2 once). */
function scannerCgroups(): string[] {
  for (const root of ['/sys/fs/cgroup/memory/ibs-scanner', '/sys/fs/cgroup/ibs-scanner']) {
    if (existsSync(root)) return readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `scanner cgroup ${d.name}`);
  }
  return [];
}

/**
 * Whether the build's digest carries the signature the service recorded as verified: on distribution (no referrers
 * API) notation stores it under the tag sha256-<hex>.
 */
async function signedInRegistry(image: string, build: Record<string, unknown>): Promise<boolean> {
  const signature = build.signature as { verified?: boolean } | undefined;
  const digest = String(build.digest);
  const slash = image.indexOf('/');
  const repository = image.slice(slash + 1, image.lastIndexOf(':'));
  const res = await fetch(`http://${image.slice(0, slash)}/v2/${repository}/tags/list`);
  const tags = res.ok ? ((await res.json()) as { tags?: string[] }).tags ?? [] : [];
  return signature?.verified === true && tags.includes(digest.replace(':', '-'));
}

async function manifestDigest(image: string): Promise<string | undefined> {
  const at = image.lastIndexOf(':');
  const slash = image.indexOf('/');
  const url = `http://${image.slice(0, slash)}/v2/${image.slice(slash + 1, at)}/manifests/${image.slice(at + 1)}`;
  const res = await fetch(url, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  return res.ok ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

export function newRow(kind: string): FaultRow {
  return { kind, injections: 0, at: {}, builds: 0, lost: 0, duplicated: 0, orphans: 0, failedCodes: [], wrongTags: 0, lostLogLines: 0, unsigned: 0, sealed: 0, inClear: 0, notes: [] };
}

/** A random delay in [min, max) ms: where in the build the fault lands. */
export function randomBetween(min: number, max: number): number {
  return min + Math.random() * (max - min);
}
