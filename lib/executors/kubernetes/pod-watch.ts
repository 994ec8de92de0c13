/**
 * The latest state of one builder pod from a watch on the API server, re-opened whenever the server ends it (watches
 * time out by design). The follower sleeps until the next event instead of polling the API server.
 */
import type { V1Pod, Watch } from '@kubernetes/client-node';

const REOPEN_DELAY_MS = 1_000;

export class PodWatch {
  latest: V1Pod | undefined;
  private wake: () => void = () => undefined;
  private controller: AbortController | undefined;
  private stopped = false;

  constructor(
    private readonly watch: Watch,
    private readonly namespace: string,
    private readonly name: string,
    /** Told once per failure streak when the watch cannot be (re-)opened or ends with an error. */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}
  private failing = false;

  start(): void {
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    this.wake();
  }

  /** Resolves at the next event about the pod, after `ms` at the latest, or when `signal` aborts. */
  changed(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = () => undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    try {
      this.controller = await this.watch.watch(
        `/api/v1/namespaces/${this.namespace}/pods`,
        { fieldSelector: `metadata.name=${this.name}` },
        (type: string, pod: V1Pod) => {
          this.failing = false;
          if (type === 'ADDED' || type === 'MODIFIED') this.latest = pod;
          if (type === 'DELETED') this.latest = undefined;
          this.wake();
        },
        (err: unknown) => {
          // Watches end by design (the server's timeout); only an ending with an error is worth a line.
          if (err && !this.stopped && (err as Error).name !== 'AbortError') this.failed(err);
          this.reopenLater();
        },
      );
    } catch (err) {
      if (!this.stopped) this.failed(err);
      this.reopenLater();
    }
  }

  private failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.onError(err);
  }

  private reopenLater(): void {
    if (this.stopped) return;
    setTimeout(() => void this.open(), REOPEN_DELAY_MS).unref();
  }
}
