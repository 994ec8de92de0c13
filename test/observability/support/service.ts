/**
 * The service as an operator runs it: api/main.ts and worker/main.ts as processes of their own (so their real
 * wiring of logger, metrics, the activity interceptor and the Temporal SDK's exporter is what is tested), on a
 * task queue and ports of the suite's own, against the running stack. Their stdout is kept as parsed JSON lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { TEST_TOKENS_FILE } from '../../support/stack';
import { freePort } from '../../support/ports';

export { freePort };

const ROOT = join(__dirname, '..', '..', '..');

export interface ServiceProcess {
  child: ChildProcess;
  /** Every stdout line that parsed as JSON, in order. */
  lines: Record<string, unknown>[];
  /** Lines that were not JSON (there should be none). */
  other: string[];
}

export interface RunningService {
  apiUrl: string;
  workerMetricsUrl: string;
  taskQueue: string;
  api: ServiceProcess;
  worker: ServiceProcess;
  stop(): Promise<void>;
}


function start(entry: string, env: Record<string, string>, ready: (line: Record<string, unknown>) => boolean): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: ServiceProcess = { child, lines: [], other: [] };
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const text of parts.filter(Boolean)) {
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          proc.lines.push(line);
          if (ready(line)) resolve(proc);
        } catch {
          proc.other.push(text);
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`${entry} exited with ${code} before it was ready:\n${proc.other.join('\n')}\n${JSON.stringify(proc.lines)}\n${stderr}`)));
  });
}

/**
 * A task queue of the suite's own, and the settings both processes share: the test process's tokens file, so
 * apiFetch's bearer tokens are the service's too, and the local registry as a target.
 */
function serviceEnv(name: string, env: Record<string, string>): { taskQueue: string; common: Record<string, string> } {
  const taskQueue = `test-${name}-${process.pid}-${Date.now()}`;
  return { taskQueue, common: { TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'info', AUTH_TOKENS_FILE: TEST_TOKENS_FILE, TARGET_REGISTRY_ALLOWLIST: '127.0.0.1:5000', ...env } };
}

const startApi = (env: Record<string, string>, port: number) => start('api/main.ts', { ...env, API_PORT: String(port) }, (l) => String(l.msg).startsWith('API listening'));

/** api/main.ts alone, on a task queue and port of its own (no worker polls the queue). */
export async function startApiProcess(name: string, env: Record<string, string> = {}): Promise<{ apiUrl: string; taskQueue: string; api: ServiceProcess }> {
  const { taskQueue, common } = serviceEnv(name, env);
  const port = await freePort();
  return { apiUrl: `http://127.0.0.1:${port}`, taskQueue, api: await startApi(common, port) };
}

export async function startService(name: string, env: Record<string, string> = {}): Promise<RunningService> {
  const { taskQueue, common } = serviceEnv(name, env);
  const [apiPort, metricsPort, sdkPort] = [await freePort(), await freePort(), await freePort()];
  const [api, worker] = await Promise.all([
    startApi(common, apiPort),
    start('worker/main.ts', { ...common, WORKER_METRICS_PORT: String(metricsPort), TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${sdkPort}` }, (l) => String(l.msg).startsWith('worker polling')),
  ]);
  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    workerMetricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    taskQueue,
    api,
    worker,
    async stop() {
      for (const p of [api, worker]) {
        if (p.child.exitCode !== null) continue;
        p.child.kill('SIGTERM');
        await Promise.race([once(p.child, 'exit'), new Promise((r) => setTimeout(r, 40_000))]);
        if (p.child.exitCode === null) p.child.kill('SIGKILL');
      }
    },
  };
}

/** A Prometheus text exposition as sample → value, e.g. `ibs_builds_started_total{consumer="x",engine="buildkit"}`. */
export interface Scrape {
  samples: Map<string, number>;
  /** Metric family names from `# TYPE` lines, with their type. */
  families: Map<string, string>;
}

export function parseExposition(text: string): Scrape {
  const samples = new Map<string, number>();
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    samples.set(`${m[1]}${normalizeLabels(m[2] ?? '')}`, Number(m[3]));
  }
  return { samples, families };
}

/** Labels sorted by name, so a sample can be looked up whatever order the exporter wrote them in. */
function normalizeLabels(labels: string): string {
  if (!labels) return '';
  const pairs = [...labels.slice(1, -1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => `${m[1]}="${m[2]}"`);
  return pairs.length ? `{${pairs.sort().join(',')}}` : '';
}

export function sample(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const key = `${name}${normalizeLabels(`{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`)}`;
  return scrape.samples.get(key) ?? 0;
}

/** `get` fetches the URL: the API's /metrics goes through apiFetch like every API call of the tests. */
export async function scrape(url: string, get: (url: string) => Promise<Response> = fetch): Promise<Scrape> {
  const res = await get(url);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return parseExposition(await res.text());
}
