import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from '../../support/scratch';
import { Component } from './components';

/** A component that fails its first start with `firstFailure` and then serves (a file says it is up). */
function flaky(firstFailure: string) {
  const dir = scratchDir('ibs-component-');
  const script = `if [ -e ${dir}/tried ]; then touch ${dir}/up; exec sleep 60; fi; touch ${dir}/tried; echo '${firstFailure}' >&2; exit 1`;
  return new Component({ name: 'flaky', command: 'sh', args: ['-c', script], logFile: join(dir, 'log'), healthy: async () => existsSync(join(dir, 'up')) });
}

describe('Component.start', () => {
  it("starts again a component whose start failed to bind a port (the Temporal dev server's own port race)", async () => {
    const component = flaky('Error: failed starting server: listen tcp 127.0.0.1:41455: bind: address already in use');
    await component.start();
    expect(component.running).toBe(true);
    expect(component.starts).toBe(2);
    await component.close();
  });

  it('throws any other start-up failure at once', async () => {
    const component = flaky('Error: failed starting server: database is locked');
    await expect(component.start()).rejects.toThrow(/flaky exited during start-up \(1\):\n.*database is locked/s);
    expect(component.starts).toBe(1);
    await component.close();
  });
});
