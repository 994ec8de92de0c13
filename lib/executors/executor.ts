import type { GateJob } from '../scan/contract';
import type { BuildEngine, BuildResources } from '../../workflows/definitions';

/** Everything an executor needs to run one build; the same description serves the local and Kubernetes executors. */
export interface BuildJob {
  buildId: string;
  /** Object-storage key of the validated context archive. */
  contextKey: string;
  /** Dockerfile path inside the context, normalized ('docker/Dockerfile'). */
  dockerfile: string;
  /** Target repository without tag, e.g. 127.0.0.1:5000/team/app; the push is by digest, tagging comes after. */
  repository: string;
  buildArgs: Record<string, string>;
  /**
   * BuildKit secrets by id, for `RUN --mount=type=secret,id=<id>` (the mirrors' URLs with their credentials), given
   * only where `passesSecrets` says the engine takes them; they reach the builder through an environment variable
   * (buildctl's on this host, the builder pod's from the build's Secret), never a command line or a pod spec.
   */
  secrets?: Record<string, string>;
  labels: Record<string, string>;
  target?: string;
  platforms: string[];
  engine: BuildEngine;
  timeoutSeconds: number;
  noCache?: boolean;
  /** Who asked for the build (X-Consumer); the kubernetes executor labels the builder pod with it. */
  consumer?: string;
  /** The Dockerfile the service wrote for a dependency build; `dockerfile` is then unused. */
  generatedDockerfile?: string;
  /** The build's own requests/limits (Kubernetes quantities), honoured within the operator's ceiling; the local executor has no pod to give them to. */
  resources?: BuildResources;
  /** W3C traceparent of the build activity's span, so the builder's own spans join the build's trace. */
  traceparent?: string;
  /**
   * With the scanner gate on: the engine writes image.tar into the gate's shared folder instead of pushing, and the
   * scanner runs over it (lib/scan/contract.ts); the gate pushes afterwards.
   */
  gate?: GateJob;
  /**
   * The workflow run this attempt belongs to. The kubernetes executor attaches a retried attempt only to a builder
   * pod of the same run; one an earlier run left (kept for inspection when an operator retries the build) is
   * replaced, so the retry builds, and scans, again.
   */
  runId?: string;
}

export interface BuildOutcome {
  /** Digest of the manifest (or index) pushed to the repository, or written to the archive with a gate. */
  digest: string;
  /** With a gate: how the scanner exited (its report is in the shared folder). */
  scan?: { exitCode: number };
}

/** What a running build reports back: its log lines, liveness, and the signal that asks it to stop. */
export interface BuildObserver {
  log(text: string): void;
  heartbeat(): void;
  readonly signal: AbortSignal;
  /** Told when the build moves on to a step the consumer sees as a status of its own (the scanner starting). */
  phase?(step: 'scanning'): void;
  /**
   * Told the credentials the builder was handed that are not configured secrets (pull secrets read from Kubernetes,
   * minted registry tokens): the build's log and errors mask them from then on.
   */
  mask?(values: readonly string[]): void;
}

/**
 * Runs builds. `run` is idempotent by build id: running it again after a crash attaches to (or safely redoes) the
 * same build rather than starting a second one that could push twice.
 */
export interface BuildExecutor {
  readonly name: string;
  /** Where it makes a work folder per attempt on the worker's machine (ibs-<build>-*), if it does. */
  readonly workRoot?: string;
  run(job: BuildJob, observer: BuildObserver): Promise<BuildOutcome>;
  check(): Promise<void>;
  /**
   * Deletes what finished builds left for inspection once its time is up (retained builder pods), and what builds
   * that `isOver` says are over left behind without an expiry (a builder pod no attempt came back to); answers how many.
   */
  sweep?(isOver?: (buildId: string) => Promise<boolean>): Promise<number>;
  /**
   * Whether a build with this engine gets `secrets` as BuildKit secrets. Where it does not (Kaniko, which reads the
   * `--mount=type=secret` syntax and ignores it), the mirrors' URLs stay build arguments, credentials included.
   */
  passesSecrets(engine: BuildEngine): boolean;
}

/** A build that ended for a reason the caller caused or must see; `code` is stable and shown to consumers. */
export class BuildFailedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** What an operator needs to act on it (limit and step of an OOM kill, the scheduler's message…); no secrets. */
    readonly evidence?: Record<string, string>,
    /**
     * A failure another attempt may not meet (a registry answering 5xx or 429, the builder's daemon going away): the
     * activity retries it, and the build ends with `code` only once the retries are spent.
     */
    readonly transient = false,
  ) {
    super(message);
    this.name = 'BuildFailedError';
  }
}
