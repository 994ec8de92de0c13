/**
 * The fault-injection suite (`npm run test:faults`, issue 13): each kind of fault injected FAULT_INJECTIONS times
 * (default 3, so that the suite fits in `npm test` on a two-core machine; the published run used 20) at random points
 * of small builds, against a private copy of the service's components (support/harness.ts: the developer's stack
 * is never killed or restarted). After each kind: every accepted build reached exactly one final state that the
 * API, PostgreSQL and Temporal agree on, no tag serves a digest other than its build's, and nothing temporary was
 * left behind. The table is printed and written to docs/reliability.md.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoreV1Api } from '@kubernetes/client-node';
import { apiFetch } from '../support/stack';
import { sleep } from './support/components';
import { slowBody } from '../support/slow-body';
import { gateStagingKeys } from '../../lib/executors/kubernetes/scan-gate';
import { slotGrantedSignal } from '../../workflows/build-queue';
import { AFTER_BUILD_KIND, FaultStack, FINAL, newRow, randomBetween, type FaultRow, type Service, type Step, type Submission } from './support/harness';

const INJECTIONS = Number(process.env.FAULT_INJECTIONS ?? 3);
const PG_OUTAGE_MS = Number(process.env.FAULT_PG_OUTAGE_SECONDS ?? 30) * 1000;
const STORAGE_OUTAGE_MS = Number(process.env.FAULT_STORAGE_OUTAGE_SECONDS ?? 20) * 1000;
const REGISTRY_WINDOW_MS = Number(process.env.FAULT_REGISTRY_WINDOW_SECONDS ?? 60) * 1000;
const KIND_TIMEOUT = 300_000 + INJECTIONS * 75_000;
/** A kind that waits out an outage at every injection gets that long more per injection (FAULT_*_SECONDS may be raised). */
const withOutages = (outageMs: number) => KIND_TIMEOUT + INJECTIONS * outageMs;
/** How long after a builder pod's step began its fault (deletion or drain) lands, at most (it exists only while it builds and scans). */
const POD_STEP_SPAN_MS: Record<Step, number> = { running: 8_000, scanning: 3_000, pushing: 0, signing: 0 };
/** The drain kind's grace period (`kubectl drain --grace-period`), shorter than a build's RUN steps. */
const DRAIN_GRACE_SECONDS = 2;
/** How long the drained node stays cordoned before it is uncordoned. */
const CORDONED_MS = 10_000;
const run = promisify(execFile);
/** Builds sent at once to the queued service (one slot) at each injection of its kinds. */
const QUEUED_BATCH = 3;
/** A waiting build asks for its slot again this often (SLOT_RECHECK, workflows/image-build.ts): a lost grant signal costs up to that. */
const SLOT_RECHECK_MS = 30_000;
/**
 * Longer than the Temporal client retries a call while the server is unreachable (@temporalio/client's gRPC retry:
 * ten attempts, 100 ms growing 1.7-fold to at most 5 s, about 20 s in all): a signal sent meanwhile is given up.
 */
const SIGNAL_RETRIES_MS = 25_000;

const rows: FaultRow[] = [];
const RUN_STARTED = new Date().toISOString();
/** What report() last wrote to docs/reliability.md, replaced by its next call. */
let writtenSection: string | undefined;
let stack: FaultStack;

/**
 * Every kind is one the service recovers from: no build lost or duplicated, nothing left behind, no wrong tag, no
 * log line lost, and the builds it hit still succeed. `mayFailWith` names the one documented code a build may end
 * with instead, where retrying can run out (a registry failing 30 % of requests for a minute can outlast the
 * build's eight attempts): such a build is a failure the caller sees and may retry, not a loss; the table counts it.
 */
function expectClean(row: FaultRow, mayFailWith?: string): void {
  const { kind, lost, duplicated, orphans, wrongTags, lostLogLines, unsigned, inClear, notes } = row;
  const failed = row.failedCodes.filter((code) => code !== mayFailWith).length;
  expect({ kind, lost, duplicated, orphans, failed, wrongTags, lostLogLines, unsigned, inClear, notes })
    .toEqual({ kind, lost: 0, duplicated: 0, orphans: 0, failed: 0, wrongTags: 0, lostLogLines: 0, unsigned: 0, inClear: 0, notes: expect.anything() as unknown });
  expect(row.injections).toBeGreaterThanOrEqual(INJECTIONS);
}

/** Runs a kind: the row is recorded even when the kind throws, so that the table shows what failed. */
async function kind(name: string, body: (row: FaultRow) => Promise<void>): Promise<FaultRow> {
  const row = newRow(name);
  rows.push(row);
  try {
    await body(row);
  } catch (err) {
    row.notes.push(`aborted: ${(err as Error).message.slice(0, 300)}`);
    throw err;
  } finally {
    report(); // after every kind, so that a run cut short still leaves its rows
    await stack.ensureRunning();
  }
  return row;
}

/** A kind's builds, by the service they went to. */
class Builds {
  private readonly byService = new Map<Service, Submission[]>();
  private readonly heldBefore = stack.proxy.held;

  add(service: Service, submission: Submission): void {
    this.byService.set(service, [...(this.byService.get(service) ?? []), submission]);
  }

  /** Waits until the service's last build reached a final state. */
  async waitFinal(service: Service): Promise<void> {
    const last = this.byService.get(service)?.at(-1);
    if (last?.id) await service.waitFinal(last.id);
  }

  count(service: Service): number {
    return this.byService.get(service)?.length ?? 0;
  }

  ids(service: Service): string[] {
    return (this.byService.get(service) ?? []).flatMap((s) => (s.id ? [s.id] : []));
  }

  async check(row: FaultRow, options?: Parameters<FaultStack['check']>[3]): Promise<void> {
    for (const [service, submissions] of this.byService) await stack.check(row, service, submissions, options);
    const afterBuild = [...this.byService].filter(([service]) => service.name === 'plain').reduce((n, [, submissions]) => n + submissions.length, 0);
    if (afterBuild > 0) row.notes.push(`afterBuild builds ${afterBuild}, their tag puts held ${this.tagPutsHeld()}`);
    // Each of them was hit while its group ran, not after (which would leave that path untested).
    expect(row.at.afterBuild ?? 0).toBe(afterBuild);
  }

  /**
   * The afterBuild builds' tag puts so far. A second put for a build means its group ran again after a fault cut the
   * first put short (a rerun after the tag moved finds it in place and puts nothing).
   */
  tagPutsHeld(): number {
    return stack.proxy.held - this.heldBefore;
  }
}

/**
 * Submits the build of a kind's `injection` and waits for the point where its fault lands; answers the service it
 * went to. Every fourth injection (so the third of three) goes to the plain service and lands in the workflow's
 * afterBuild group, the path a build without signing takes after its build step; the others go to the signing
 * service, rotating through build, scan, push and sign.
 */
async function buildAtRandomPoint(row: FaultRow, builds: Builds, injection: number, kind: string, seconds?: number): Promise<Service> {
  if (injection % 4 === 2) {
    const plain = await stack.plainService();
    const submission = await plain.submit(AFTER_BUILD_KIND, seconds);
    builds.add(plain, submission);
    await plain.atAfterBuild(row, submission.id!);
    return plain;
  }
  const service = stack.service;
  // The signing service's own count keeps its rotation whole.
  const rotation = builds.count(service);
  const submission = await service.submit(kind, seconds);
  builds.add(service, submission);
  await service.atRandomPoint(row, submission.id!, rotation);
  return service;
}

beforeAll(async () => {
  stack = new FaultStack();
  await stack.start();
}, 600_000); // the first run on a machine builds the scanner image (test/support/scanner-image.ts)

afterAll(async () => {
  await stack?.close();
}, 120_000);

describe('fault injection', () => {
  it('worker SIGKILL mid-build: a new worker takes over', async () => {
    const row = await kind('worker SIGKILL', async (row) => {
      const builds = new Builds();
      for (let i = 0; i < INJECTIONS; i++) {
        const service = await buildAtRandomPoint(row, builds, i, 'worker');
        await service.worker.kill();
        row.injections++;
        await service.worker.start();
        // One kill per build: a kill takes one of the build activity's attempts (five), and kills faster than builds
        // finish would exhaust them: a crash loop, which fails builds by design (internal_error), not this kind.
        await builds.waitFinal(service);
      }
      await builds.check(row);
      // A worker killed in an afterBuild group leaves it unfinished: the next worker runs the whole group again.
      expect(builds.tagPutsHeld()).toBeGreaterThanOrEqual(2 * (row.at.afterBuild ?? 0));
    });
    expectClean(row);
  }, KIND_TIMEOUT);

  it('API restart mid-upload and mid-follow: a clean error, and a retry with the Idempotency-Key makes one build', async () => {
    const row = await kind('API restart (upload, follow)', async (row) => {
      const service = stack.service;
      const submissions: Submission[] = [];
      for (let i = 0; i < INJECTIONS; i++) {
        // Mid-upload: a ~1.5 s upload, the API killed somewhere in it (or just after it).
        const { submission, body } = await service.newSubmission('upload', 3, 4 << 20);
        const encoded = new Response(body); // one encoding: its boundary is in the content type
        const contentType = encoded.headers.get('content-type')!;
        const bytes = Buffer.from(await encoded.arrayBuffer());
        const upload = service.post(submission, slowBody(bytes, 1_500), { headers: { 'content-type': contentType }, duplex: 'half' } as RequestInit)
          .then(async (res) => ({ status: res.status, text: await res.text() }), (err: Error) => ({ status: 0, text: String(err.cause ?? err) }));
        // Restarts alternate between a stop (SIGTERM) and a crash (SIGKILL).
        const signal = i % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
        await sleep(randomBetween(100, 1_800));
        await service.api.stop(signal);
        row.injections++;
        const first = await withTimeout(upload, 30_000, 'the upload neither failed nor answered within 30 s of the API dying');
        // A clean error is a failed connection or an error answer, never a hang; an accepted build is fine too.
        expect([0, 202, 503]).toContain(first.status);
        await service.api.start();
        const retry = await service.post(submission, bytes, { headers: { 'content-type': contentType } });
        expect([200, 202]).toContain(retry.status);
        submission.id = ((await retry.json()) as { id: string }).id;
        submissions.push(submission);

        // Mid-follow: the API killed while a client follows a running build's log.
        const followed = await service.submit('follow', 5);
        submissions.push(followed);
        const follow = followLog(service, followed.id!);
        await sleep(randomBetween(500, 4_000));
        await service.api.stop(signal);
        row.injections++;
        const cut = await withTimeout(follow, 30_000, 'the follower neither ended nor failed within 30 s of the API dying');
        // The stream ended early: no `end` event unless the build had already finished.
        if (cut.end) expect(FINAL).toContain(cut.end);
        await service.api.start();
        const resumed = await withTimeout(followLog(service, followed.id!), 300_000, 'the resumed follower never saw the end');
        const final = await service.status(followed.id!);
        expect(resumed.end).toBe(final?.status);
      }
      await stack.check(row, service, submissions);
    });
    expectClean(row);
  }, KIND_TIMEOUT);

  it('Temporal server restart, its state kept on disk', async () => {
    const row = await kind('Temporal restart', async (row) => {
      const builds = new Builds();
      for (let i = 0; i < INJECTIONS; i++) {
        await buildAtRandomPoint(row, builds, i, 'temporal');
        await stack.temporal.component.stop(i % 2 === 0 ? 'SIGTERM' : 'SIGKILL');
        row.injections++;
        await stack.temporal.component.start();
      }
      await builds.check(row);
    });
    expectClean(row);
  }, KIND_TIMEOUT);

  it(`PostgreSQL down for ${PG_OUTAGE_MS / 1000} s: 503 with Retry-After meanwhile, running builds finish after`, async () => {
    const row = await kind(`PostgreSQL down ${PG_OUTAGE_MS / 1000} s`, async (row) => {
      const service = stack.service;
      const builds = new Builds();
      for (let i = 0; i < INJECTIONS; i++) {
        await buildAtRandomPoint(row, builds, i, 'postgres', 6);
        await stack.postgres.crash();
        row.injections++;
        const downUntil = Date.now() + PG_OUTAGE_MS;
        // Meanwhile the API accepts nothing: a submission and a read answer 503 database_unavailable with Retry-After.
        const { submission, body } = await service.newSubmission('refused');
        for (const res of [await service.post(submission, body), await apiFetch(service.apiUrl, '/v1/builds')]) {
          expect(res.status).toBe(503);
          expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
        }
        await sleep(downUntil - Date.now());
        await stack.postgres.start();
        const { rows: refused } = await stack.pool.query('SELECT id FROM builds WHERE idempotency_key = $1', [submission.key]);
        expect(refused).toHaveLength(0);
      }
      await builds.check(row);
    });
    expectClean(row);
  }, withOutages(PG_OUTAGE_MS));

  it(`PostgreSQL down for ${PG_OUTAGE_MS / 1000} s while builds wait for a slot: the queue's limit holds and every build gets the slot`, async () => {
    const row = await kind(`PostgreSQL down ${PG_OUTAGE_MS / 1000} s, builds queued`, (row) =>
      queuedKind(row, () => 'build step', async () => {
        await stack.postgres.crash();
        await sleep(PG_OUTAGE_MS);
        await stack.postgres.start();
      }));
    expectClean(row);
  }, withOutages(PG_OUTAGE_MS));

  it('worker SIGKILL while builds wait for a slot: the slot is given back and granted once, and the grant reaches its build', async () => {
    const row = await kind('worker SIGKILL, builds queued', (row) =>
      // Every grant reaches its build by a signal: the round's own, or, when the kill took that down with the worker,
      // the one the starting worker sends again (worker/main.ts), before the build's recheck.
      queuedKind(
        row,
        (i) => (['build step', 'before release', 'release'] as const)[i % 3]!,
        async () => {
          const { worker } = await stack.queuedService();
          await worker.kill();
          await worker.start();
        },
        'signalled',
      ));
    expectClean(row);
  }, withOutages(SLOT_RECHECK_MS));

  it('Temporal server down while a slot is given back: the grant it could not signal still reaches its build', async () => {
    const row = await kind('Temporal restart, builds queued', (row) =>
      queuedKind(row, (i) => (i % 2 === 0 ? 'before release' : 'build step'), async (i, holder, point) => {
        await stack.temporal.component.stop(i % 4 < 2 ? 'SIGKILL' : 'SIGTERM');
        if (point === 'before release') {
          // Down from before the holder's release until the worker's client has given up the grant's signal.
          await untilReleased(holder);
          await sleep(SIGNAL_RETRIES_MS);
        }
        await stack.temporal.component.start();
      }));
    expectClean(row);
  }, withOutages(SIGNAL_RETRIES_MS + SLOT_RECHECK_MS));

  it(`the registry answering 5xx and 429 on 30 % of requests for ${REGISTRY_WINDOW_MS / 1000} s`, async () => {
    const row = await kind('registry 5xx/429 (30 %)', async (row) => {
      const service = stack.service;
      // Every other build goes to a service without signing, whose tag step runs in the workflow's afterBuild group.
      const plain = await stack.plainService();
      const submissions: Submission[] = [];
      const plainSubmissions: Submission[] = [];
      const before = stack.proxy.injections;
      const agentsBefore = stack.proxy.faultedAgents.length;
      stack.proxy.faulty = true;
      const until = Date.now() + REGISTRY_WINDOW_MS;
      try {
        while (Date.now() < until || stack.proxy.injections - before < INJECTIONS) {
          if (submissions.length > plainSubmissions.length) plainSubmissions.push(await plain.submit('registry', 2));
          else submissions.push(await service.submit('registry', 2));
          await sleep(randomBetween(1_000, 4_000));
          if (Date.now() > until + 120_000) break;
        }
      } finally {
        stack.proxy.faulty = false;
      }
      row.injections = stack.proxy.injections - before;
      // Which step met each fault, by its client: notation signs; BuildKit pulls the base image; the service's own
      // registry client pushes the scanned archive and tags.
      for (const agent of stack.proxy.faultedAgents.slice(agentsBefore)) {
        const at = /notation/i.test(agent) ? 'sign' : /buildkit|containerd/i.test(agent) ? 'build' : 'push';
        row.at[at] = (row.at[at] ?? 0) + 1;
      }
      row.notes.push(`faults by status: ${JSON.stringify(Object.fromEntries(stack.proxy.injected))}`);
      row.notes.push(`builds with signing ${submissions.length}, without ${plainSubmissions.length}`);
      await stack.check(row, service, submissions);
      await stack.check(row, plain, plainSubmissions);
    });
    expectClean(row, 'push_failed');
  }, KIND_TIMEOUT);

  it(`object storage down for ${STORAGE_OUTAGE_MS / 1000} s: no log line lost`, async () => {
    const row = await kind(`object storage down ${STORAGE_OUTAGE_MS / 1000} s`, async (row) => {
      const builds = new Builds();
      for (let i = 0; i < INJECTIONS; i++) {
        const service = await buildAtRandomPoint(row, builds, i, 'storage', 10);
        await stack.minio.component.stop('SIGKILL');
        row.injections++;
        await sleep(STORAGE_OUTAGE_MS);
        await stack.minio.component.start();
        // One outage per build. Back to back, two-minute outages keep the store down all but a few seconds in every
        // two minutes, for as long as the run lasts: at 20 injections, longer than a build's attempts wait out
        // (2026-12-05 15:32: two builds failed), which is another fault than the one this kind injects.
        await builds.waitFinal(service);
      }
      await builds.check(row, { checkLogs: true });
    });
    expectClean(row);
  }, withOutages(STORAGE_OUTAGE_MS));

  it('BuildKit daemon restarted mid-build', async () => {
    const row = await kind('BuildKit restart', async (row) => {
      const service = stack.service;
      const submissions: Submission[] = [];
      for (let i = 0; i < INJECTIONS; i++) {
        const submission = await service.submit('buildkit', 5);
        submissions.push(submission);
        await service.atRandomPoint(row, submission.id!, i);
        await stack.buildkit.component.stop(i % 2 === 0 ? 'SIGTERM' : 'SIGKILL');
        row.injections++;
        await stack.buildkit.component.start();
        await service.waitFinal(submission.id!); // one restart per build, as for the worker
      }
      await stack.check(row, service, submissions);
    });
    expectClean(row);
  }, KIND_TIMEOUT);

  it('a builder pod deleted mid-build on the real node', async () => {
    const row = await kind('builder pod deleted', (row) =>
      podKind(row, 'pods', async ({ coreApi, namespace, name }) => coreApi().deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).then(() => true, () => false)),
    );
    expectClean(row);
  }, KIND_TIMEOUT);

  it("a builder pod's node drained mid-build: evicted with a short grace period, its next attempt waits for the uncordoned node", async () => {
    const { cordonNode, drainPod } = await import('../cluster/support/node');
    const row = await kind('builder pod\'s node drained', async (row) => {
      try {
        await podKind(row, 'drain', async ({ namespace, name }) => {
          // `kubectl drain --force --grace-period=2`: the build is killed 2 s later, unless it ends first. The node
          // stays cordoned a while, so that the next attempt's pod may find no node and wait.
          const evicted = await drainPod(namespace, name, DRAIN_GRACE_SECONDS);
          await sleep(CORDONED_MS);
          await cordonNode(false);
          return evicted;
        });
      } finally {
        await cordonNode(false);
      }
    });
    expectClean(row);
  }, KIND_TIMEOUT + INJECTIONS * CORDONED_MS);
});

interface PodInjection {
  coreApi: () => CoreV1Api;
  namespace: string;
  /** The build's pod. */
  name: string;
}

/**
 * Builds through builder pods on the real node, by a service of its own named `serviceName`, with `inject` applied to
 * each build's pod at a random point of its build or scan; true when it found the pod. The kinds' usual checks follow,
 * and no pod, secret or staged object may be left.
 */
async function podKind(row: FaultRow, serviceName: string, inject: (target: PodInjection) => Promise<boolean>): Promise<void> {
  const { coreApi, KUBECONFIG, createNamespace, deleteNamespace, objectStore } = await import('../kubernetes/support/cluster');
  const { nodeAddress, REAL_NODE_NAMESPACE_LABELS } = await import('../cluster/support/node');
  if (!existsSync(KUBECONFIG)) throw new Error(`no local cluster (${KUBECONFIG} is missing): start it with infra/local/start.sh`);
  // The builder image the pods run, as test/cluster/builder-pods.test.ts makes it (cached after the first time).
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  const address = await nodeAddress();
  const namespace = await createNamespace('ibs-faults', REAL_NODE_NAMESPACE_LABELS);
  try {
    // Pods reach the host's shared registry and MinIO at the node's address (writing there harms no one: the
    // repositories and keys are this run's); the API and the worker are a second service of the private stack.
    // The scanner gate runs as the pod's scanner container, uploading the report and the archive to the store at
    // the node's address; the worker then pushes the scanned archive and signs, as for the other kinds.
    const service = await stack.addService(serviceName, {
      scanAndSign: true,
      targetRegistry: `${address}:5000`,
      baseImage: `${address}:5000/${'ibs-test/busybox:1'}`,
      storage: {
        endpoint: `http://${address}:9000`,
        user: process.env.MINIO_SERVER_ROOT_USER ?? '',
        password: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '',
        bucket: process.env.LOGS_BUCKET ?? 'data',
      },
      extraEnv: {
        BUILD_EXECUTOR: 'kubernetes',
        KUBECONFIG,
        IMAGE_BUILDER_NAMESPACE: namespace,
        IMAGE_BUILDER_REPOSITORY: '127.0.0.1:5000/ibs',
        IMAGE_BUILDER_VERSION: '0.28.1',
        IMAGE_BUILDER_POD_RETENTION_SECONDS: '0',
      },
    });
    const submissions: Submission[] = [];
    // Only an injection that found its pod counts; one that came after the pod's steps (a quick scan) takes a new build.
    for (let i = 0; row.injections < INJECTIONS && i < 2 * INJECTIONS; i++) {
      const submission = await service.submit('pod', 6);
      submissions.push(submission);
      const name = `ibs-build-${submission.id!}`;
      // The pod exists once the build activity runs; the fault meets it at a random point after it started.
      const deadline = Date.now() + 120_000;
      while (!(await coreApi().readNamespacedPod({ namespace, name }).catch(() => undefined))) {
        if (Date.now() > deadline) throw new Error(`builder pod ${name} never appeared`);
        await sleep(250);
      }
      // At a random point of the build (the pod pulls, fetches the context and runs about 6 s of RUN steps) or
      // of the scan in the pod's scanner container.
      const at = await service.atRandomPoint(row, submission.id!, i, { steps: ['running', 'scanning'], spanMs: POD_STEP_SPAN_MS });
      if (await inject({ coreApi, namespace, name })) {
        row.injections++;
      } else {
        // No fault landed in that step.
        if ((row.at[at] ?? 0) > 1) row.at[at]! -= 1;
        else delete row.at[at];
        row.notes.push(`${submission.id!}: its pod was gone before the fault (the build in step ${at})`);
      }
    }
    await stack.check(row, service, submissions, {
      registryFor: (image) => image,
      extraOrphans: async () => {
        // Pods and their registry secrets are deleted as their build ends (retention 0); a moment for the last deletion.
        const deadline = Date.now() + 60_000;
        for (;;) {
          const pods = (await coreApi().listNamespacedPod({ namespace })).items.map((p) => `pod ${p.metadata!.name!}`);
          const secrets = (await coreApi().listNamespacedSecret({ namespace })).items
            .map((x) => x.metadata!.name!).filter((n) => n.startsWith('ibs-build-')).map((n) => `secret ${n}`);
          // What the pod's scanner container uploads, which the worker removes once it has fetched it.
          const staged: string[] = [];
          for (const s of submissions) {
            const keys = gateStagingKeys(s.id ?? '');
            for (const key of [keys.report, keys.archive]) if (s.id && (await objectStore().exists(key))) staged.push(`object ${key}`);
          }
          const left = [...pods, ...secrets, ...staged];
          if (left.length === 0 || Date.now() > deadline) return left;
          await sleep(1_000);
        }
      },
    });
  } finally {
    await deleteNamespace(namespace);
  }
}

/**
 * Where a queued kind's fault lands, in the slot holder's way: at a random point of its build step, while the others
 * wait; at a random point of its afterBuild group before it gives the slot back (its tag put held by the fault proxy);
 * or the moment the round of its release is committed, which grants the next build its slot, so that the fault meets
 * the grant's signal, gone out or not. A build whose signal is lost finds its grant when it asks again (SLOT_RECHECK).
 */
type QueuedPoint = 'build step' | 'before release' | 'release';

/**
 * A kind against the queued service (one slot): at each injection QUEUED_BATCH builds at once and the fault at the
 * injection's point, then every build must end. Besides the usual checks, the queue's own record: every build was
 * granted and gave its slot back, and no grant came before the previous holder's release. The notes say, for each
 * fault around a release, how the build it granted heard of it (the grant's signal, or its own recheck) and when;
 * with `grantsHeardBy`, each must have heard of it that way.
 */
async function queuedKind(
  row: FaultRow,
  pointOf: (injection: number) => QueuedPoint,
  fault: (injection: number, holder: string, point: QueuedPoint) => Promise<void>,
  grantsHeardBy?: GrantHeard['how'],
): Promise<void> {
  const queued = await stack.queuedService();
  const builds = new Builds();
  const waitingAtFault: number[] = [];
  const grants: (GrantHeard & { point: QueuedPoint })[] = [];
  for (let i = 0; i < INJECTIONS; i++) {
    const batch: Submission[] = [];
    for (let n = 0; n < QUEUED_BATCH; n++) {
      // Their tag puts are held, so that a fault can land in the afterBuild group before the release.
      const submission = await queued.submit(AFTER_BUILD_KIND, 5);
      builds.add(queued, submission);
      batch.push(submission);
    }
    const ids = batch.map((s) => s.id!);
    const { holder, waiting } = await untilOneHoldsOthersWait(queued, ids);
    const point = pointOf(i);
    let at: string;
    if (point === 'build step') {
      await sleep(randomBetween(0, 2_500));
      at = await queued.step(holder);
    } else if (point === 'before release') {
      const where = await queued.inAfterBuild(holder);
      at = where === 'afterBuild' ? point : where;
    } else {
      await untilReleased(holder);
      at = point;
    }
    await fault(i, holder, point);
    row.injections++;
    row.at[at] = (row.at[at] ?? 0) + 1;
    waitingAtFault.push(waiting);
    for (const id of ids) await queued.waitFinal(id);
    if (point !== 'build step') grants.push({ point, ...(await howGrantReached(holder, ids)) });
  }
  row.notes.push(`builds waiting for the slot at each fault: ${waitingAtFault.join(' ')}`);
  if (grants.length > 0) row.notes.push(`the build that the holder's release granted: ${grants.map((g) => `${g.point}: ${describeGrant(g)}`).join('; ')}`);
  await builds.check(row);
  const { rows: slots } = await stack.pool.query<{ build_id: string; granted_at: Date | null; released_at: Date | null }>(
    'SELECT build_id, granted_at, released_at FROM build_slots WHERE task_queue = $1 AND build_id = ANY($2::uuid[]) ORDER BY granted_at',
    [queued.taskQueue, builds.ids(queued)],
  );
  expect(slots).toHaveLength(builds.count(queued));
  expect(slots.filter((s) => s.granted_at === null || s.released_at === null)).toEqual([]);
  const overlaps = slots.slice(1).filter((s, k) => s.granted_at! < slots[k]!.released_at!);
  for (const s of overlaps) row.notes.push(`${s.build_id}: granted at ${s.granted_at!.toISOString()}, before the slot it took was given back`);
  expect(overlaps).toEqual([]);
  if (grantsHeardBy) expect(grants.filter((g) => g.how !== grantsHeardBy).map((g) => `${g.point}: ${describeGrant(g)}`)).toEqual([]);
}

/**
 * Waits until every one of `ids` asked for the queued service's slot, one holds it and is in its build step, and others
 * wait in the queue (read from the queue's rows in build_slots); answers the holder and how many wait.
 */
async function untilOneHoldsOthersWait(service: Service, ids: string[]): Promise<{ holder: string; waiting: number }> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { rows } = await stack.pool.query<{ build_id: string; granted: boolean; status: string }>(
      `SELECT s.build_id, s.granted_at IS NOT NULL AS granted, b.status FROM build_slots s JOIN builds b ON b.id = s.build_id
       WHERE s.task_queue = $1 AND s.build_id = ANY($2::uuid[]) AND s.released_at IS NULL`,
      [service.taskQueue, ids],
    );
    const holder = rows.find((r) => r.granted && r.status === 'running');
    const waiting = rows.filter((r) => !r.granted).length;
    if (holder && waiting > 0 && rows.length === ids.length) return { holder: holder.build_id, waiting };
    if (Date.now() > deadline) throw new Error(`no build of ${ids.join(', ')} held the slot while the others waited for it: ${JSON.stringify(rows)}`);
    await sleep(50);
  }
}

/** Waits, polling every few milliseconds, until the round that gives the build's slot back is committed. */
async function untilReleased(id: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { rows } = await stack.pool.query('SELECT 1 FROM build_slots WHERE build_id = $1 AND released_at IS NOT NULL', [id]);
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error(`${id} never gave its slot back`);
    await sleep(3);
  }
}

/**
 * How the build that the holder's release granted heard of its grant: by the `slotGranted` signal (in its workflow's
 * history) or by asking again, and how long after the grant it started (its `running` record).
 */
async function howGrantReached(holder: string, ids: string[]): Promise<GrantHeard> {
  const { rows } = await stack.pool.query<{ build_id: string; seconds: number | null }>(
    `SELECT s.build_id, EXTRACT(EPOCH FROM b.started_at - s.granted_at)::float AS seconds FROM build_slots s JOIN builds b ON b.id = s.build_id
     WHERE s.build_id = ANY($2::uuid[]) AND s.granted_at = (SELECT released_at FROM build_slots WHERE build_id = $1)`,
    [holder, ids],
  );
  const next = rows[0];
  if (!next) return { how: 'none granted' };
  const history = await stack.temporalClient.workflow.getHandle(`build-${next.build_id}`).fetchHistory();
  const signalled = (history.events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === slotGrantedSignal.name);
  return { how: signalled ? 'signalled' : 'by its recheck', seconds: next.seconds ?? undefined };
}

interface GrantHeard {
  how: 'signalled' | 'by its recheck' | 'none granted';
  /** From the grant to the build's `running` record. */
  seconds?: number;
}

const describeGrant = (g: GrantHeard) => (g.how === 'none granted' ? g.how : `${g.how}, started ${g.seconds?.toFixed(1) ?? '?'} s after the grant`);

/** Follows a build's log until the stream ends; returns the status of its `end` event, if one came. */
async function followLog(service: Service, id: string): Promise<{ end?: string; error?: string }> {
  try {
    const res = await apiFetch(service.apiUrl, `/v1/builds/${id}/logs?follow=true`);
    if (!res.ok || !res.body) return { error: `status ${res.status}` };
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      text += decoder.decode(chunk, { stream: true });
      const end = /event: end\ndata: (.*)\n/.exec(text);
      if (end?.[1]) return { end: (JSON.parse(end[1]) as { status: string }).status };
    }
    return {};
  } catch (err) {
    return { error: String((err as Error).cause ?? err) };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)))]).finally(() => clearTimeout(timer));
}

function report(): void {
  if (rows.length === 0) return;
  const header = ['kind', 'injections', 'in step', 'builds', 'lost', 'duplicated', 'orphans', 'failed builds', 'wrong tags', 'unsigned', 'lost log lines', 'sealed builds', 'in the clear'];
  const steps = (r: FaultRow) => Object.entries(r.at).map(([step, n]) => `${step} ${n}`).join(', ') || '—';
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${[r.kind, r.injections, steps(r), r.builds, r.lost, r.duplicated, r.orphans, r.failedCodes.length, r.wrongTags, r.unsigned, r.lostLogLines, r.sealed, r.inClear].join(' | ')} |`),
  ];
  const load = loadavg().map((l) => l.toFixed(2)).join(', ');
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.kind}: ${n}`));
  console.log(`\nfault injection, ${INJECTIONS} per kind, load average ${load}\n${lines.join('\n')}\n${notes.join('\n')}`);
  if (process.env.FAULT_WRITE_DOCS === '0') return;
  const doc = join(__dirname, '../../docs/reliability.md');
  const section = [
    `## Run of ${RUN_STARTED.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `FAULT_INJECTIONS=${INJECTIONS}; load average (1, 5, 15 min) at the end: ${load}.`,
    '',
    ...lines,
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes, ''] : []),
  ].join('\n');
  // This run's section is replaced as its rows grow; earlier runs' stay below it.
  const marker = '<!-- fault runs: newest first -->';
  let text = existsSync(doc) ? readFileSync(doc, 'utf8') : '';
  if (writtenSection) text = text.replace(writtenSection, '');
  if (!text.includes(marker)) text = `${text.trimEnd()}\n\n${marker}\n`;
  writtenSection = `\n\n${section}`;
  writeFileSync(doc, text.replace(marker, `${marker}${writtenSection}`));
}
