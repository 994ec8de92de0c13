/**
 * A build through the whole service on a builder pod against the whole service with the local executor: the chart
 * installed with helm on the real node (API and worker as pods, builds in rootless BuildKit builder pods; the same
 * release as test/cluster/helm-install.test.ts) and the in-process test stack with the local executor (the stack's
 * BuildKit daemon), each sent the same context (FROM the local busybox, `RUN echo <nonce>`, RUN steps sleeping
 * 3 + 3 + 4 s) over HTTP, alternating, ROUNDS rounds (default 3). A build's time runs from the POST to the terminal
 * status the API reports (polled every 500 ms). For the pod it also measures, from the workflow's start (Temporal's
 * start time), when the builder container started running (the pod's status) and when the first line of the
 * builder's own log was served by the API's log endpoint (polled every 250 ms). Prints medians; the last line is
 * `service_pod_ms=<n> service_local_ms=<n> ratio=<pod/local> workflow_to_running_ms=<n> workflow_to_first_log_ms=<n>`.
 * Run with the stack's environment: `npm run bench:service-pod`.
 */
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { buildForm, contextOf } from '../test/support/archives';
import { BASE_IMAGE } from '../test/support/registry';
import { apiFetch, startTestStack, waitForBuild } from '../test/support/stack';
import { coreApi } from '../test/kubernetes/support/cluster';
import { installRelease } from '../test/cluster/support/release';
import { BUILD_CONTAINER } from '../lib/executors/kubernetes/pod-spec';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const STEPS = ['RUN sleep 3', 'RUN sleep 3', 'RUN sleep 4'];

async function main(): Promise<void> {
  const release = await installRelease('ibs-bench-service');
  const local = await startTestStack('bench-service-local', { BUILD_EXECUTOR: 'local' });
  await local.startWorker();
  const temporal = new Client({ connection: await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' }) });
  const basePath = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);

  /** Sends the context to `apiUrl` and returns the build id and how long until it ended. */
  const build = async (apiUrl: string, registry: string, repository: string, nonce: string, onStarted?: (id: string) => void) => {
    const context = await contextOf({ Dockerfile: [`FROM ${registry}/${basePath}`, `RUN echo ${nonce}`, ...STEPS, ''].join('\n') });
    const started = performance.now();
    const res = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image: `${registry}/${repository}:${nonce}` }, context) });
    if (res.status !== 202) throw new Error(`POST /v1/builds: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    onStarted?.(id);
    const result = await waitForBuild(apiUrl, id, 600_000);
    if (result.status !== 'succeeded') throw new Error(`build ${id} ${String(result.status)}: ${JSON.stringify(result.error)}`);
    return { id, ms: performance.now() - started };
  };

  const podMs: number[] = [];
  const localMs: number[] = [];
  const toRunning: number[] = [];
  const toFirstLog: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const nonce = `r${round}-${randomBytes(4).toString('hex')}`;
      let firstLogAt: number | undefined;
      let polling = true;
      let poll: Promise<void> | undefined;
      const pod = await build(release.apiUrl, `${release.address}:5000`, 'ibs-bench/service-pod', nonce, (id) => {
        poll = (async () => {
          while (polling && firstLogAt === undefined) {
            const res = await apiFetch(release.apiUrl, `/v1/builds/${id}/logs`);
            // Only a served log counts: before the build has one the API answers with an error body.
            const text = res.status === 200 ? await res.text() : (await res.body?.cancel(), '');
            if (text.split('\n').some((line) => line.trim() !== '' && !line.startsWith('[ibs]'))) firstLogAt = Date.now();
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        })();
      });
      polling = false;
      await poll;
      podMs.push(pod.ms);
      const workflowStart = (await temporal.workflow.getHandle(`build-${pod.id}`).describe()).startTime.getTime();
      // The chart keeps finished pods for podRetentionSeconds (300), so the pod's own record is still there.
      const builder = await coreApi().readNamespacedPod({ namespace: release.namespace, name: `ibs-build-${pod.id}` });
      const state = builder.status?.containerStatuses?.find((c) => c.name === BUILD_CONTAINER)?.state;
      const runningAt = new Date(state?.running?.startedAt ?? state?.terminated?.startedAt ?? NaN).getTime();
      if (Number.isFinite(runningAt)) toRunning.push(runningAt - workflowStart);
      if (firstLogAt !== undefined) toFirstLog.push(firstLogAt - workflowStart);

      const loc = await build(local.apiUrl, '127.0.0.1:5000', 'ibs-bench/service-local', nonce);
      localMs.push(loc.ms);
      console.log(`round ${round}: service+pod ${Math.round(pod.ms)} ms (running ${toRunning.at(-1) ?? NaN} ms and first log ${toFirstLog.at(-1) ?? NaN} ms after the workflow started), service+local ${Math.round(loc.ms)} ms`);
    }
  } finally {
    await local.close();
    await temporal.connection.close();
    await release.uninstall();
  }
  const pod = median(podMs);
  const loc = median(localMs);
  console.log(`service_pod_ms=${Math.round(pod)} service_local_ms=${Math.round(loc)} ratio=${(pod / loc).toFixed(2)} workflow_to_running_ms=${Math.round(median(toRunning))} workflow_to_first_log_ms=${Math.round(median(toFirstLog))}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
