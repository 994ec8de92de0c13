/**
 * The local executor's scanner: the scanner image unpacked once per digest into a root filesystem on this host
 * (fetched with the service's registry client), run under runc with the build's own folder as /shared, its
 * configured command, args, env and resources (cgroup limits). Its output goes to the build log, where the
 * scanner's env values are masked like every secret.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { extract } from 'tar-stream';
import { parseQuantity } from '../config/quantity';
import { gunzippedIfGzip } from '../context/streams';
import { abandonedEntries, ownedPrefix } from '../scratch/abandoned';
import type { RegistryClient } from '../registry/client';
import { SHARED_DIR, type ScannerRun } from './contract';
import type { ScannerImage } from './scanner-image';

export interface RuncScannerOptions {
  runcPath: string;
  registry: RegistryClient;
  /** Where unpacked scanner images are kept, one folder per digest. */
  cacheDir?: string;
}

export interface ScannerObserver {
  log(text: string): void;
  heartbeat(): void;
  readonly signal: AbortSignal;
}

const SETPRIV = '/usr/bin/setpriv';
/** Bundles are named ibs-scanner-<pid of the worker>-<random>, so that a restarted worker can tell abandoned ones. */
const BUNDLE_PREFIX = 'ibs-scanner-';

/** The cgroup parent of scanner containers (runc's cgroupsPath /ibs-scanner/<id>), under the host's cgroup mount. */
const CGROUP_PARENT = 'ibs-scanner';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** The runc container id of the scanner run in `bundle`: derived from its path, so a restarted worker knows it too. */
export function containerId(bundle: string): string {
  return `ibs-scan-${createHash('sha256').update(bundle).digest('hex').slice(0, 16)}`;
}

/**
 * Removes what the scanners of dead worker processes left, at worker start-up. A worker killed mid-scan (SIGKILL, OOM
 * kill) takes runc with it (its parent-death signal) but not the container, which scans on; its bundle (config.json
 * with the scanner's env) and runc's state stay. Each such container is killed and deleted (runc delete --force),
 * then its cgroup removed, then its bundle. The cgroup needs its own step: runc killed while it was still creating
 * the container leaves a cgroup that its state does not name, which runc delete leaves behind. Answers the bundles
 * removed.
 */
export async function removeAbandonedScanners(runcPath: string, dir = tmpdir()): Promise<string[]> {
  const abandoned = await abandonedEntries(dir, BUNDLE_PREFIX);
  for (const name of abandoned) {
    const bundle = join(dir, name);
    const stateDir = join(bundle, 'state');
    for (const id of await readdir(stateDir).catch(() => [] as string[])) {
      await new Promise<void>((resolve) => {
        spawn(runcPath, ['--root', stateDir, 'delete', '--force', id], { stdio: 'ignore' }).on('error', () => resolve()).on('close', () => resolve());
      });
    }
    await removeCgroup(containerId(bundle));
    await rm(bundle, { recursive: true, force: true });
  }
  return abandoned;
}

/**
 * Kills what is left in a scanner's cgroup and removes it: on cgroup v2 one folder, on v1 one under each hierarchy.
 * A cgroup can only be removed once empty, so removal is retried while the killed processes exit.
 */
async function removeCgroup(id: string): Promise<void> {
  const hierarchies = ['', ...(await readdir(CGROUP_ROOT).catch(() => [] as string[]))];
  for (const hierarchy of hierarchies) {
    const dir = join(CGROUP_ROOT, hierarchy, CGROUP_PARENT, id);
    const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => undefined);
    if (procs === undefined) continue;
    for (const pid of procs.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        // Gone already (ENOENT), or not removable for another reason than processes still exiting.
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 50) break;
        await sleep(100);
      }
    }
  }
}

export class RuncScanner {
  constructor(private readonly options: RuncScannerOptions) {}

  /** Runs the scanner over `sharedDir`; answers its exit code. Throws only when it could not be run at all. */
  async run(image: ScannerImage, run: ScannerRun, sharedDir: string, observer: ScannerObserver, timeoutSeconds: number): Promise<number> {
    const rootfs = await this.rootfsFor(image);
    const bundle = await mkdtemp(join(tmpdir(), ownedPrefix(BUNDLE_PREFIX)));
    const id = containerId(bundle);
    const stateDir = join(bundle, 'state');
    try {
      // The bundle (its config.json holds the scanner's env) is private to root.
      await chmod(bundle, 0o700);
      await writeFile(join(bundle, 'config.json'), JSON.stringify(runtimeSpec(image, run, rootfs, sharedDir, id)), { mode: 0o600 });
      return await this.runc(['--root', stateDir, 'run', '--bundle', bundle, id], stateDir, id, observer, timeoutSeconds);
    } finally {
      await rm(bundle, { recursive: true, force: true });
    }
  }

  private runc(args: string[], stateDir: string, id: string, observer: ScannerObserver, timeoutSeconds: number): Promise<number> {
    const useSetpriv = existsSync(SETPRIV);
    return new Promise((resolve, reject) => {
      const child = spawn(useSetpriv ? SETPRIV : this.options.runcPath, useSetpriv ? ['--pdeathsig', 'KILL', '--', this.options.runcPath, ...args] : args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
      const onOutput = (chunk: Buffer) => observer.log(chunk.toString('utf8'));
      child.stdout.on('data', onOutput);
      child.stderr.on('data', onOutput);
      let stopped: Error | undefined;
      const stop = (reason: Error) => {
        stopped ??= reason;
        spawn(this.options.runcPath, ['--root', stateDir, 'kill', id, 'KILL'], { stdio: 'ignore' }).on('error', () => undefined);
      };
      const heartbeat = setInterval(() => observer.heartbeat(), 2_000);
      const timer = setTimeout(() => stop(new Error(`the scanner did not finish within ${timeoutSeconds} s`)), timeoutSeconds * 1000);
      const onAbort = () => stop(new Error('the build was cancelled'));
      observer.signal.addEventListener('abort', onAbort, { once: true });
      const finish = () => {
        clearInterval(heartbeat);
        clearTimeout(timer);
        observer.signal.removeEventListener('abort', onAbort);
      };
      child.on('error', (err) => {
        finish();
        reject(new Error(`could not start runc (${this.options.runcPath}) for the scanner: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        finish();
        if (stopped) return reject(stopped);
        resolve(code ?? (signal ? 128 : 1));
      });
    });
  }

  /** The image unpacked into <cache>/<digest hex>; built in a temporary folder and renamed, so never half there. */
  private async rootfsFor(image: ScannerImage): Promise<string> {
    const cache = this.options.cacheDir ?? join(tmpdir(), 'ibs-scanner-images');
    const dir = join(cache, image.digest.replace(/^sha256:/, ''));
    if (existsSync(join(dir, '.complete'))) return join(dir, 'rootfs');
    await mkdir(cache, { recursive: true });
    const work = await mkdtemp(join(cache, 'unpack-'));
    try {
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs);
      // Each layer streams from the registry into the folder, none held whole; one whose bytes do not match its
      // digest fails at its end, and the folder is discarded below.
      for (const layer of image.layers) {
        await unpackLayer(await this.options.registry.blobStream(image.registry, image.repository, layer.digest), rootfs, /gzip/.test(layer.mediaType));
      }
      // The mount points runc needs, whatever the image has.
      for (const d of ['proc', 'dev', 'sys', 'tmp', SHARED_DIR.slice(1)]) await mkdir(join(rootfs, d), { recursive: true });
      await writeFile(join(work, '.complete'), image.digest);
      await rm(dir, { recursive: true, force: true });
      await rename(work, dir);
    } catch (err) {
      await rm(work, { recursive: true, force: true });
      throw err;
    }
    return join(dir, 'rootfs');
  }
}

/**
 * Unpacks one layer into `rootfs`, applying whiteouts. Entries are written only inside the root: paths are
 * normalised, and a path whose parent resolves (through links of earlier layers) outside the root is refused.
 */
export async function unpackLayer(layer: Readable | Buffer, rootfs: string, gzipped: boolean): Promise<void> {
  const root = await realpath(rootfs);
  const inside = async (name: string): Promise<string | undefined> => {
    const clean = posix.normalize(`/${name}`).slice(1);
    if (!clean || clean.startsWith('..')) return undefined;
    const target = join(root, clean);
    const parent = await realpath(dirname(target)).catch(() => undefined);
    if (parent === undefined) {
      await mkdir(dirname(target), { recursive: true });
      return (await realpath(dirname(target))).startsWith(root) ? target : undefined;
    }
    return parent === root || parent.startsWith(`${root}/`) ? target : undefined;
  };
  const tar = extract();
  tar.on('entry', (header, stream, next) => {
    void (async () => {
      const target = await inside(header.name);
      const base = posix.basename(header.name);
      if (!target) return stream.resume();
      if (base === '.wh..wh..opq') {
        stream.resume();
        return;
      }
      if (base.startsWith('.wh.')) {
        stream.resume();
        await rm(join(dirname(target), base.slice(4)), { recursive: true, force: true });
        return;
      }
      const existing = await lstat(target).catch(() => undefined);
      if (existing && !(existing.isDirectory() && header.type === 'directory')) await rm(target, { recursive: true, force: true });
      switch (header.type) {
        case 'directory':
          await mkdir(target, { recursive: true, mode: header.mode });
          stream.resume();
          return;
        case 'file':
          await pipeline(stream, createWriteStream(target, { mode: header.mode, flags: 'wx' }));
          return;
        case 'symlink':
          stream.resume();
          await symlink(header.linkname ?? '', target);
          return;
        case 'link': {
          stream.resume();
          const source = await inside(header.linkname ?? '');
          if (source && (await lstat(source).catch(() => undefined))?.isFile()) await link(source, target);
          return;
        }
        default:
          stream.resume();
      }
    })().then(() => next(), (err: unknown) => next(err as Error));
  });
  const source = Buffer.isBuffer(layer) ? Readable.from([layer]) : layer;
  try {
    // A layer whose media type does not say gzip may still be gzipped: its first bytes tell.
    await pipeline(Readable.from(gunzippedIfGzip(source, gzipped)), tar);
  } finally {
    // A layer refused part way (an entry outside the root, a broken archive) is not read on: its answer is let go.
    source.destroy();
  }
}

/** The OCI runtime spec of one scanner run: host network (scanners fetch databases), its own pid/mount/ipc/uts. */
export function runtimeSpec(image: ScannerImage, run: ScannerRun, rootfs: string, sharedDir: string, id: string): Record<string, unknown> {
  const imageEnv = image.config.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  const env = new Map(imageEnv.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as const));
  if (!env.has('HOME')) env.set('HOME', '/tmp');
  for (const [k, v] of Object.entries(run.env)) env.set(k, v);
  const args = [...run.command, ...run.args];
  if (args.length === 0) throw new Error('the scanner image has no entrypoint and imageBuilder.imageScanner.command is not set');
  const cpuLimit = Math.round((parseQuantity(run.resources.limits.cpu) ?? 0.5) * 100_000);
  const cpuRequest = parseQuantity(run.resources.requests.cpu) ?? 0.25;
  const caps = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_SETGID', 'CAP_SETUID', 'CAP_KILL'];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: image.config.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'scanner',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
      { destination: SHARED_DIR, type: 'bind', source: sharedDir, options: ['rbind', 'rw'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      cgroupsPath: `/${CGROUP_PARENT}/${id}`,
      resources: {
        memory: { limit: Math.round(parseQuantity(run.resources.limits.memory) ?? 512 * 2 ** 20) },
        cpu: { quota: Math.max(1000, cpuLimit), period: 100_000, shares: Math.max(2, Math.round(cpuRequest * 1024)) },
      },
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}


