/**
 * The fault suite's own components: each a child process of the test on ports and scratch folders of its own, with
 * a health check, so that the suite can kill, stop and restart them without touching the developer's stack (the
 * shared Temporal, PostgreSQL, MinIO, registry and BuildKit serve every other suite). Started as infra/local/start.sh
 * starts the shared ones, from the same cached binaries.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from 'node:fs';
import { get as httpsGet, Agent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { restartablePort } from '../../support/ports';

const run = promisify(execFile);
export const IBS_BIN = join(process.env.IBS_CACHE ?? join(homedir(), '.cache/image-build-service'), 'bin');
const ROOT = join(__dirname, '..', '..', '..');

export interface ComponentOptions {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Resolves true once the component serves; called every 250 ms after the start. */
  healthy: () => Promise<boolean>;
  /** Where its output goes (appended across restarts). */
  logFile: string;
  startTimeoutMs?: number;
}

/** One component as a child process in a process group of its own (buildkitd's runc children die with it). */
export class Component {
  private child?: ChildProcess;
  private log: WriteStream;
  /** The output of the current run, for start-up failures and ready lines. */
  output = '';
  starts = 0;

  constructor(readonly options: ComponentOptions) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts it and waits until it is healthy. A start that fails to bind a port is tried twice more: the Temporal dev
   * server picks some of its ports itself (a free port, closed, then bound), and another process can take one between
   * the two. That race is the dev server's, not a fault under test; it is logged, and any other failure is thrown.
   */
  async start(attempt = 1): Promise<void> {
    if (this.running) throw new Error(`${this.options.name} is already running`);
    const { command, args, env, healthy, name } = this.options;
    this.output = '';
    this.starts++;
    const child = spawn(command, args, { cwd: this.options.cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    const onData = (chunk: Buffer) => {
      if (this.output.length < 1 << 20) this.output += chunk.toString();
      this.log.write(chunk);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 90_000);
    for (;;) {
      if (!this.running) {
        // Its own words on the port, which a long error chain (Temporal's) would push out of the tail below.
        const bind = /listen tcp [^\s"\\]+: bind: address already in use/.exec(this.output)?.[0];
        if (bind && attempt < 3) {
          const line = `[faults] ${name} could not bind a port (${bind}); starting it again\n`;
          this.log.write(line);
          console.warn(line.trim());
          await sleep(1_000);
          return this.start(attempt + 1);
        }
        throw new Error(`${name} exited during start-up (${child.exitCode ?? child.signalCode})${bind ? `, ${bind}` : ''}:\n${this.output.slice(-3000)}`);
      }
      if (await healthy().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${name} did not become healthy in time:\n${this.output.slice(-3000)}`);
      await sleep(250);
    }
  }

  /** Signals the whole process group and waits until the component exited (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signalGroup(child.pid!, signal);
    const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    // Children of the group that outlive their parent (runc shims) go too.
    signalGroup(child.pid!, 'SIGKILL');
  }

  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  async close(): Promise<void> {
    await this.kill();
    await new Promise((resolve) => this.log.end(resolve));
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return res.ok;
}

export interface TemporalInstance {
  component: Component;
  address: string;
}

/** `temporal server start-dev` with its state in a file of the scratch folder, so a restart keeps every workflow. */
export async function temporalServer(dir: string): Promise<TemporalInstance> {
  const [port, httpPort, metricsPort] = [await restartablePort(), await restartablePort(), await restartablePort()];
  const address = `127.0.0.1:${port}`;
  const component = new Component({
    name: 'temporal',
    command: join(IBS_BIN, 'temporal'),
    args: [
      'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--http-port', String(httpPort),
      '--metrics-port', String(metricsPort), '--db-filename', join(dir, 'temporal.db'), '--log-level', 'warn',
      '--search-attribute', 'IbsConsumer=Keyword', '--search-attribute', 'IbsImage=Keyword', '--search-attribute', 'IbsStatus=Keyword',
    ],
    logFile: join(dir, 'temporal.log'),
    healthy: async () => {
      await run(join(IBS_BIN, 'temporal'), ['operator', 'namespace', 'describe', '-n', 'default', '--address', address], { timeout: 5_000 });
      return true;
    },
  });
  return { component, address };
}

export interface MinioInstance {
  component: Component;
  endpoint: string;
  user: string;
  password: string;
  bucket: string;
}

/**
 * A MinIO server of its own on a free port, storing under `dir`. With `tls` (a key and certificate in PEM) it serves
 * HTTPS only (its `--certs-dir`), and the caller must accept the certificate.
 */
export async function minioServer(dir: string, host = '127.0.0.1', tls?: { key: string; cert: string }): Promise<MinioInstance> {
  const port = await restartablePort();
  const endpoint = `${tls ? 'https' : 'http'}://${host}:${port}`;
  const data = join(dir, 'minio');
  mkdirSync(data, { recursive: true });
  const certs = join(dir, 'minio-certs');
  if (tls) {
    mkdirSync(certs, { recursive: true });
    writeFileSync(join(certs, 'private.key'), tls.key, { mode: 0o600 });
    writeFileSync(join(certs, 'public.crt'), tls.cert);
  }
  const instance: MinioInstance = {
    endpoint,
    user: 'ibs-faults',
    password: 'ibs-faults-minio-password',
    bucket: 'data',
    component: new Component({
      name: 'minio',
      command: join(IBS_BIN, 'minio'),
      args: ['server', '--quiet', '--address', `${host}:${port}`, ...(tls ? ['--certs-dir', certs] : []), data],
      env: { MINIO_ROOT_USER: 'ibs-faults', MINIO_ROOT_PASSWORD: 'ibs-faults-minio-password', MINIO_BROWSER: 'off' },
      logFile: join(dir, 'minio.log'),
      healthy: () => (tls ? httpsAnswers(`${endpoint}/minio/health/ready`) : httpOk(`${endpoint}/minio/health/ready`)),
    }),
  };
  return instance;
}

/** Whether an HTTPS URL answers 200, whatever its certificate. */
function httpsAnswers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsGet(url, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

export function s3ClientOf(minio: MinioInstance): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint: minio.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: minio.user, secretAccessKey: minio.password },
    // A server of minioServer's with TLS has a self-signed certificate.
    requestHandler: minio.endpoint.startsWith('https:') ? { httpsAgent: new Agent({ rejectUnauthorized: false }) } : undefined,
  });
}

export async function createBucket(minio: MinioInstance): Promise<void> {
  const client = s3ClientOf(minio);
  await client.send(new CreateBucketCommand({ Bucket: minio.bucket })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou') throw err;
  });
  client.destroy();
}

export interface RegistryInstance {
  component: Component;
  address: string;
  root: string;
}

/** Debian's docker-registry (distribution) on a free port, storing under the scratch folder. */
export async function registryServer(dir: string): Promise<RegistryInstance> {
  const port = await restartablePort();
  const address = `127.0.0.1:${port}`;
  const root = join(dir, 'registry');
  mkdirSync(root, { recursive: true });
  const config = join(dir, 'registry.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: { level: warn }',
    'storage:',
    `  filesystem: { rootdirectory: ${root} }`,
    '  delete: { enabled: true }',
    `http: { addr: ${address} }`,
    '',
  ].join('\n'));
  return {
    address,
    root,
    component: new Component({
      name: 'registry',
      command: '/usr/bin/docker-registry',
      args: ['serve', config],
      logFile: join(dir, 'registry.log'),
      healthy: () => httpOk(`http://${address}/v2/`),
    }),
  };
}

export interface BuildkitInstance {
  component: Component;
  host: string;
}

/**
 * A BuildKit daemon of the suite's own: its own root, socket and OTEL socket (the default one is the shared
 * daemon's), plain HTTP to the loopback registries it pulls from and pushes to.
 */
export function buildkitDaemon(dir: string, httpRegistries: string[]): BuildkitInstance {
  const root = join(dir, 'buildkit');
  mkdirSync(root, { recursive: true });
  const host = `unix://${join(root, 'buildkitd.sock')}`;
  const config = join(root, 'buildkitd.toml');
  writeFileSync(config, [
    '[worker.oci]',
    '  enabled = true',
    `  snapshotter = "${process.env.BUILDKIT_OCI_WORKER_SNAPSHOTTER ?? 'overlayfs'}"`,
    '  binary = "/usr/bin/runc"',
    '  gc = true',
    '  gckeepstorage = 2000',
    '[worker.containerd]',
    '  enabled = false',
    ...httpRegistries.flatMap((r) => [`[registry."${r}"]`, '  http = true', '  insecure = true']),
    '',
  ].join('\n'));
  return {
    host,
    component: new Component({
      name: 'buildkitd',
      command: join(IBS_BIN, 'buildkitd'),
      args: ['--config', config, '--root', join(root, 'root'), '--addr', host, '--otel-socket-path', join(root, 'otel.sock'), '--oci-worker-net', 'host'],
      logFile: join(dir, 'buildkitd.log'),
      healthy: async () => {
        await run(join(IBS_BIN, 'buildctl'), ['--addr', host, 'debug', 'workers'], { timeout: 5_000 });
        return true;
      },
    }),
  };
}

/** The service's real entry point (api/main.ts or worker/main.ts) as a child process; ready when it logs `readyLine`. */
export function serviceProcess(name: string, entry: string, env: Record<string, string>, readyLine: string, logFile: string): Component {
  const component: Component = new Component({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, entry)],
    cwd: ROOT,
    env,
    logFile,
    healthy: async () => component.output.includes(readyLine),
  });
  return component;
}
