/**
 * What a builder pod costs: the same small context (FROM the local busybox, three RUN steps sleeping 3 + 3 + 4 s)
 * built by the kubernetes executor in a rootless BuildKit pod on the real node ibs-node, by the local executor
 * against the stack's BuildKit daemon (no cache, as a fresh pod has none), and in a Kaniko pod and a BuildKit-in-QEMU
 * pod on the same node, one after the other in each of ROUNDS rounds (default 3). For the rootless pod it also
 * measures, from the executor's start, when the pod was first seen Running and when the first line of the builder's
 * own log reached the build log. All push to the local registry. Prints medians; the last line is
 * `pod_ms=<n> local_ms=<n> ratio=<pod/local> to_running_ms=<n> to_first_log_ms=<n> kaniko_ms=<n>
 * kaniko_vs_rootless=<r> qemu_ms=<n> qemu_vs_rootless=<r>`. MODES (default `local,kaniko,qemu`) narrows the set.
 * Run with the stack's environment: `bash infra/local/with-stack.sh tsx bench/builder-pod.ts`.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../lib/config';
import type { BuildJob, BuildObserver } from '../lib/executors/executor';
import { builderPodName, createKubernetesExecutor } from '../lib/executors/kubernetes';
import { LocalExecutor } from '../lib/executors/local/local-executor';
import { prepareBuilderAuth } from '../lib/registry/builder-auth';
import { createObjectStore } from '../lib/storage';
import { contextOf } from '../test/support/archives';
import { BASE_IMAGE, ensureBaseImage } from '../test/support/registry';
import { KUBECONFIG, createNamespace, deleteNamespace, readPod } from '../test/kubernetes/support/cluster';
import { REAL_NODE_NAMESPACE_LABELS, nodeAddress, podReachableStore } from '../test/cluster/support/node';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
type Mode = 'rootless' | 'kaniko' | 'qemu' | 'local';
/** MODES=rootless,local,... picks what each round builds (default: all four); rootless is always measured. */
const MODES: Mode[] = ['rootless', ...((process.env.MODES ?? 'local,kaniko,qemu').split(',').map((m) => m.trim()).filter((m): m is Mode => ['local', 'kaniko', 'qemu'].includes(m)))];
const STEPS = ['RUN sleep 3', 'RUN sleep 3', 'RUN sleep 4'];

async function main(): Promise<void> {
  const config = loadConfig();
  await ensureBaseImage();
  const basePath = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);
  const address = await nodeAddress();
  const namespace = await createNamespace('ibs-bench', REAL_NODE_NAMESPACE_LABELS);
  // Pods reach MinIO and the registry at the node's address; the host's BuildKit at loopback.
  const podStorage = podReachableStore(address);
  const localStorage = createObjectStore(config);
  const podExecutor = (useQemu: boolean) => createKubernetesExecutor(
    { namespace, kubeconfigPath: KUBECONFIG, retentionSeconds: 0, imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '0.28.1', useQemu } },
    { storage: podStorage, insecureRegistry: true },
  );
  // Rootless BuildKit and Kaniko (a job's engine picks it) share one executor; BuildKit in QEMU is a deployment mode.
  const rootless = podExecutor(false);
  const qemu = podExecutor(true);
  const local = new LocalExecutor({
    buildkitHost: config.executor.buildkitHost,
    buildctlPath: config.executor.buildctlPath,
    storage: localStorage,
    contextLimits: config.contextLimits,
    insecureRegistry: true,
    noCache: true,
    builderAuth: (_job, _dockerfile, dir) => prepareBuilderAuth({ type: 'private_registry', credentialsFor: async () => undefined }, [], dir),
  });

  const context = async (registry: string, nonce: string): Promise<string> => {
    const key = `contexts/bench-pod-${nonce}-${registry.replace(/[^0-9]/g, '')}.tar.gz`;
    const dockerfile = [`FROM ${registry}/${basePath}`, `RUN echo ${nonce}`, ...STEPS, ''].join('\n');
    await localStorage.put(key, await contextOf({ Dockerfile: dockerfile }), { contentType: 'application/gzip' });
    return key;
  };
  const job = (contextKey: string, repository: string): BuildJob => ({
    buildId: `bench-${randomBytes(6).toString('hex')}`, contextKey, dockerfile: 'Dockerfile', repository, buildArgs: {}, labels: {},
    platforms: ['linux/amd64'], engine: 'buildkit', timeoutSeconds: 600,
  });

  /** Times one build in a pod: total, and from the executor's start to the pod Running and to its first log line. */
  const timePod = async (executor: typeof rootless, engine: 'buildkit' | 'kaniko', repository: string, nonce: string) => {
    const podJob = { ...job(await context(`${address}:5000`, nonce), `${address}:5000/${repository}`), engine };
    const started = performance.now();
    let firstLog: number | undefined;
    let running: number | undefined;
    const observer: BuildObserver = {
      // The executor's own "[ibs] ..." lines do not count: the first line from the builder container does.
      log: (text) => { if (firstLog === undefined && !text.startsWith('[ibs]')) firstLog = performance.now() - started; },
      heartbeat: () => undefined,
      signal: new AbortController().signal,
    };
    let done = false;
    const poll = (async () => {
      while (!done && running === undefined) {
        const pod = await readPod(namespace, builderPodName(podJob.buildId));
        if (pod?.status?.phase === 'Running') running = performance.now() - started;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    await executor.run(podJob, observer);
    const ms = performance.now() - started;
    done = true;
    await poll;
    return { ms, running, firstLog };
  };

  const times: Record<Mode, number[]> = { rootless: [], kaniko: [], qemu: [], local: [] };
  const toRunning: number[] = [];
  const toFirstLog: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const nonce = randomBytes(6).toString('hex');
      const line: string[] = [];
      for (const mode of MODES) {
        if (mode === 'local') {
          const localJob = job(await context('127.0.0.1:5000', nonce), '127.0.0.1:5000/ibs-bench/local');
          const localStarted = performance.now();
          await local.run(localJob, { log: () => undefined, heartbeat: () => undefined, signal: new AbortController().signal });
          times.local.push(performance.now() - localStarted);
          line.push(`local ${Math.round(times.local.at(-1)!)} ms`);
          continue;
        }
        const { ms, running, firstLog } = await timePod(mode === 'qemu' ? qemu : rootless, mode === 'kaniko' ? 'kaniko' : 'buildkit', `ibs-bench/${mode}`, nonce);
        times[mode].push(ms);
        if (mode === 'rootless') {
          if (running !== undefined) toRunning.push(running);
          if (firstLog !== undefined) toFirstLog.push(firstLog);
        }
        line.push(`${mode} ${Math.round(ms)} ms (running at ${Math.round(running ?? NaN)} ms, first log at ${Math.round(firstLog ?? NaN)} ms)`);
      }
      console.log(`round ${round}: ${line.join(', ')}`);
    }
  } finally {
    await deleteNamespace(namespace);
  }
  const m = (mode: Mode) => median(times[mode]);
  const figures = [`pod_ms=${Math.round(m('rootless'))}`];
  if (MODES.includes('local')) figures.push(`local_ms=${Math.round(m('local'))}`, `ratio=${(m('rootless') / m('local')).toFixed(2)}`);
  figures.push(`to_running_ms=${Math.round(median(toRunning))}`, `to_first_log_ms=${Math.round(median(toFirstLog))}`);
  for (const engine of ['kaniko', 'qemu'] as const) {
    if (MODES.includes(engine)) figures.push(`${engine}_ms=${Math.round(m(engine))}`, `${engine}_vs_rootless=${(m(engine) / m('rootless')).toFixed(2)}`);
  }
  console.log(figures.join(' '));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
