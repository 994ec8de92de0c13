/**
 * The `local` executor: builds with a BuildKit daemon on this host through buildctl. It is the embedded default
 * for development and tests; production builds run on Kubernetes builder pods behind the same interface.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { extractContextArchive, resolveContextFile, type ContextLimits, type ContextSummary } from '../../context/archive';
import type { BuilderAuth } from '../../registry/builder-auth';
import { IMAGE_ARCHIVE } from '../../scan/contract';
import type { RuncScanner } from '../../scan/runc-scanner';
import { removeEntriesStartingWith } from '../../scratch/abandoned';
import { removeTree } from '../../scratch/remove-tree';
import type { ObjectStore } from '../../storage/object-store';
import { BuildFailedError, type BuildExecutor, type BuildJob, type BuildObserver, type BuildOutcome } from '../executor';
import { buildctlArguments, classifyBuildFailure, secretVariables } from './buildctl';
import { LogTail } from '../log-tail';

export interface LocalExecutorOptions {
  buildkitHost: string;
  buildctlPath: string;
  storage: ObjectStore;
  contextLimits: ContextLimits;
  /** Push over plain HTTP (DISABLE_HTTPS). */
  insecureRegistry: boolean;
  /**
   * Prepares, in `dir` (private to this run), the builder's access to the registries this build talks to (its target
   * and the bases its Dockerfile names): a DOCKER_CONFIG naming a credential helper, never holding a password.
   */
  builderAuth: (job: BuildJob, dockerfile: string, dir: string) => Promise<BuilderAuth>;
  heartbeatIntervalMs?: number;
  /** Build without BuildKit's cache (BUILDKIT_NO_CACHE), e.g. for reproducible timings. */
  noCache?: boolean;
  workDir?: string;
  /** OTLP/HTTP base URL buildctl exports its spans to (tracing on); the build's trace reaches it as TRACEPARENT. */
  otlpEndpoint?: string;
  /** Runs the scanner of gated builds (imageBuilder.imageScanner.enabled) under runc over the gate's folder. */
  scanner?: RuncScanner;
}

// setpriv makes the kernel kill buildctl when the worker dies (SIGKILL included): a retried attempt must never
// race a leftover client of the previous attempt that could still push.
const SETPRIV = '/usr/bin/setpriv';

/**
 * The work folders of this build's earlier attempts: a worker killed mid-build (SIGKILL, OOM) leaves its folder
 * behind, and a new attempt only runs once Temporal gave the earlier one up (and setpriv ended its buildctl).
 */
function removeEarlierAttempts(root: string, buildId: string): Promise<void> {
  return removeEntriesStartingWith(root, `ibs-${buildId}-`);
}

export class LocalExecutor implements BuildExecutor {
  readonly name = 'local';

  constructor(private readonly options: LocalExecutorOptions) {}

  get workRoot(): string {
    return this.options.workDir ?? tmpdir();
  }

  async run(job: BuildJob, observer: BuildObserver): Promise<BuildOutcome> {
    const root = this.workRoot;
    await removeEarlierAttempts(root, job.buildId);
    const workDir = await mkdtemp(join(root, `ibs-${job.buildId}-`));
    try {
      const contextDir = join(workDir, 'context');
      await mkdir(contextDir);
      const context = await this.fetchContext(job, contextDir);
      observer.log(`[ibs] context ${job.contextKey} extracted\n`);

      const { dockerfile, dockerfilePath, dockerfileDir } = await this.dockerfileOf(job, context, contextDir, workDir);
      const auth = await this.options.builderAuth(job, dockerfile, join(workDir, 'auth'));
      const credentialsIssuedAt = new Date();
      const metadataFile = join(workDir, 'metadata.json');
      const args = buildctlArguments({ ...job, dockerfile: dockerfilePath, noCache: job.noCache ?? this.options.noCache }, {
        buildkitHost: this.options.buildkitHost,
        contextDir,
        dockerfileDir,
        metadataFile,
        insecureRegistry: this.options.insecureRegistry,
        archive: job.gate ? join(job.gate.sharedDir, IMAGE_ARCHIVE) : undefined,
      });
      const logTail = await this.runBuildctl(args, auth, workDir, job, observer, credentialsIssuedAt).finally(() => auth.close());
      const metadata = JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, unknown>;
      const digest = metadata['containerimage.digest'];
      if (typeof digest !== 'string' || !digest.startsWith('sha256:')) {
        throw new BuildFailedError('build_failed', `BuildKit reported no image digest; last log lines:\n${logTail}`);
      }
      if (!job.gate) return { digest };
      if (!this.options.scanner) throw new Error('the scanner gate is on but the local executor has no scanner runner');
      observer.phase?.('scanning');
      observer.log(`[ibs] scanning the image with ${job.gate.scanner.image}\n`);
      const exitCode = await this.options.scanner.run(job.gate.scannerImage, job.gate.scanner, job.gate.sharedDir, observer, job.timeoutSeconds);
      observer.log(`[ibs] the scanner exited with code ${exitCode}\n`);
      return { digest, scan: { exitCode } };
    } finally {
      await removeTree(workDir);
    }
  }

  /** buildctl takes BuildKit secrets whichever engine was asked for: this executor always builds with BuildKit. */
  passesSecrets(): boolean {
    return true;
  }

  async check(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(this.options.buildctlPath, ['--addr', this.options.buildkitHost, 'debug', 'workers'], {
        stdio: 'ignore',
      });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`buildkitd at ${this.options.buildkitHost} is not answering`))));
    });
  }

  /** The context's Dockerfile, or the one the service wrote for a dependency build (kept outside the context). */
  private async dockerfileOf(job: BuildJob, context: ContextSummary, contextDir: string, workDir: string) {
    if (job.generatedDockerfile !== undefined) {
      const dockerfileDir = join(workDir, 'generated');
      await mkdir(dockerfileDir);
      await writeFile(join(dockerfileDir, 'Dockerfile'), job.generatedDockerfile, { flag: 'wx' });
      return { dockerfile: job.generatedDockerfile, dockerfilePath: 'Dockerfile', dockerfileDir };
    }
    // Resolved inside the context, never by the OS: an absolute link in the context must not read a host file.
    const dockerfilePath = resolveContextFile(context, job.dockerfile);
    if (!dockerfilePath) throw new BuildFailedError('dockerfile_not_found', `${job.dockerfile} is not a file of the build context`);
    const dockerfile = await readFile(join(contextDir, dockerfilePath), 'utf8');
    return { dockerfile, dockerfilePath, dockerfileDir: join(contextDir, posix.dirname(dockerfilePath)) };
  }

  private async fetchContext(job: BuildJob, contextDir: string): Promise<ContextSummary> {
    const archive = await this.options.storage.get(job.contextKey);
    if (!archive) {
      throw new BuildFailedError('context_missing', `the build context ${job.contextKey} is no longer in object storage; submit the build again`);
    }
    // The archive was validated on upload; extracting validates again because storage is outside our control.
    return extractContextArchive(archive, contextDir, this.options.contextLimits);
  }

  /** buildctl reads the OpenTelemetry SDK's standard variables and continues the trace named by TRACEPARENT. */
  private tracingEnv(job: BuildJob): Record<string, string> {
    if (!this.options.otlpEndpoint) return {};
    return {
      OTEL_EXPORTER_OTLP_ENDPOINT: this.options.otlpEndpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      ...(job.traceparent ? { TRACEPARENT: job.traceparent } : {}),
    };
  }

  private runBuildctl(args: string[], auth: BuilderAuth, workDir: string, job: BuildJob, observer: BuildObserver, credentialsIssuedAt: Date): Promise<string> {
    const useSetpriv = existsSync(SETPRIV);
    const command = useSetpriv ? SETPRIV : this.options.buildctlPath;
    const argv = useSetpriv ? ['--pdeathsig', 'KILL', '--', this.options.buildctlPath, ...args] : args;
    return new Promise((resolve, reject) => {
      const child = spawn(command, argv, {
        cwd: workDir,
        // buildctl runs docker-credential-ibs from PATH when BuildKit first needs a registry's credentials.
        env: { PATH: `${auth.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: workDir, DOCKER_CONFIG: auth.configDir, ...this.tracingEnv(job), ...secretEnvironment(job) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const tail = new LogTail(40);
      const onOutput = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        tail.push(text);
        observer.log(text);
      };
      child.stdout.on('data', onOutput);
      child.stderr.on('data', onOutput);

      let stopReason: BuildFailedError | undefined;
      const stop = (reason: BuildFailedError) => {
        stopReason ??= reason;
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      };
      const heartbeat = setInterval(() => observer.heartbeat(), this.options.heartbeatIntervalMs ?? 2_000);
      const timeout = setTimeout(
        () => stop(new BuildFailedError('build_timeout', `the build did not finish within ${job.timeoutSeconds} s (timeoutSeconds); raise it or make the build faster`)),
        job.timeoutSeconds * 1000,
      );
      const onAbort = () => stop(new BuildFailedError('build_cancelled', 'the build was cancelled'));
      observer.signal.addEventListener('abort', onAbort, { once: true });

      const finish = () => {
        clearInterval(heartbeat);
        clearTimeout(timeout);
        observer.signal.removeEventListener('abort', onAbort);
      };
      child.on('error', (err) => {
        finish();
        reject(new Error(`could not start buildctl (${this.options.buildctlPath}): ${err.message}`));
      });
      child.on('close', (code) => {
        finish();
        if (stopReason) return reject(stopReason);
        if (code === 0) return resolve(tail.text());
        reject(classifyBuildFailure(tail.text(), { repository: job.repository, credentialsIssuedAt }));
      });
    });
  }
}

/** The job's secrets in the variables its buildctl arguments name (secretVariables). */
function secretEnvironment(job: BuildJob): Record<string, string> {
  return Object.fromEntries(Object.entries(secretVariables(job)).map(([id, variable]) => [variable, job.secrets![id]!]));
}
