/** Runs `task` now and every `intervalMs` (a run still going skips a turn); each outcome goes to `report`. */
export function every<T>(intervalMs: number, task: () => Promise<T>, report: (err: unknown, result?: T) => void): { stop(): void } {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= task()
      .then((result) => report(undefined, result), (err: unknown) => report(err))
      .finally(() => (running = undefined));
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
