/**
 * Upload progress on stderr: a bar redrawn in place on a terminal (at most ten times a second), or one line at the
 * start and one at the end when stderr is a file or a pipe, so CI logs are not flooded.
 */
const MiB = 1024 * 1024;

function size(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

export interface Progress {
  update(sent: number, total: number): void;
  done(): void;
}

export function progressReporter(write: (text: string) => void, interactive: boolean, label: string, now: () => number = Date.now): Progress {
  const started = now();
  let lastDraw = 0;
  let last = { sent: 0, total: 0 };
  let announced = false;
  const rate = (sent: number) => `${size(sent / Math.max((now() - started) / 1000, 0.001))}/s`;
  return {
    update(sent, total) {
      last = { sent, total };
      if (!interactive) {
        if (!announced) write(`${label}: ${size(total)}\n`);
        announced = true;
        return;
      }
      if (now() - lastDraw < 100 && sent < total) return;
      lastDraw = now();
      const share = total ? sent / total : 1;
      const width = 30;
      const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
      write(`\r${label} [${bar}] ${(share * 100).toFixed(0).padStart(3)}% ${size(sent)} / ${size(total)} ${rate(sent)}`);
    },
    done() {
      if (last.total === 0) return;
      write(`${interactive ? '\n' : ''}${label}: sent ${size(last.sent)} in ${((now() - started) / 1000).toFixed(1)} s (${rate(last.sent)})\n`);
    },
  };
}
