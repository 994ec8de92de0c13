/** Keeps the last lines of a build log for error messages without holding the whole log in memory. */
export class LogTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}

  push(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > this.max) this.lines = this.lines.slice(-this.max);
  }

  text(): string {
    return [...this.lines, this.partial].filter(Boolean).slice(-this.max).join('\n');
  }
}

/**
 * The builder's closing error, from its last error line to the end (a registry's errors follow on lines of their
 * own): buildctl's `error: failed to solve: …`, Kaniko's `error pushing image: …`. What a RUN step printed before it
 * does not count.
 */
export function closingError(logTail: string): string {
  const lines = logTail.split('\n');
  let at = lines.length - 1;
  while (at >= 0 && !/^error[: ]/i.test(lines[at]!.trim())) at--;
  return at < 0 ? '' : lines.slice(at).join('\n').trim();
}
