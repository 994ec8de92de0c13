/**
 * Two attempts of one build writing its log in one worker process, against the real PostgreSQL and object storage:
 * a terminated run's attempt still closing while the retry's starts. The second writer waits for the first to
 * close (before that, the first removed the spool under the second, whose next state write then ended the whole
 * worker process with ENOENT); every line is stored once, in order.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildLog } from '../../lib/logs/build-log';
import { startTestStack, type TestStack } from '../support/stack';

describe('two attempts of a build writing its log in one process', () => {
  let stack: TestStack;
  let spoolDir: string;

  beforeAll(async () => {
    stack = await startTestStack('log-attempts');
    spoolDir = await mkdtemp(join(tmpdir(), 'ibs-log-attempts-'));
  });
  afterAll(async () => {
    await stack?.close();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  });

  it('opens the second only once the first closed, and stores every line once', async () => {
    const image = '127.0.0.1:5000/log-attempts/app:1';
    const { record } = await stack.builds.create({
      id: randomUUID(), consumer: 'tests', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
      contextKey: 'contexts/sha256/none', contextDigest: 'sha256:none',
    });
    const settings = { ...stack.deps.buildLogs, spoolDir, flushIntervalMs: 20 };
    const first = await BuildLog.open(stack.deps.storage, settings, record.id, []);
    first.write('first-1\nfirst-2\n');

    let secondOpened = false;
    const opening = BuildLog.open(stack.deps.storage, settings, record.id, []).then((log) => {
      secondOpened = true;
      return log;
    });
    await sleep(300);
    expect(secondOpened).toBe(false);
    expect(BuildLog.isOpen(record.id)).toBe(true);

    first.write('first-3\n');
    await first.close();
    const second = await opening;
    second.write('second-1\n');
    await sleep(100);
    second.write('second-2\n');
    await second.close();
    expect(BuildLog.isOpen(record.id)).toBe(false);

    const stored = await (await stack.api(`/v1/builds/${record.id}/logs`)).text();
    expect(stored.match(/(first|second)-\d/g)).toEqual(['first-1', 'first-2', 'first-3', 'second-1', 'second-2']);
  });
});
