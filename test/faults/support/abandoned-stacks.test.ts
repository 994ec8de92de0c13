import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scratchDir } from '../../support/scratch';
import { claimStack, sweepAbandonedStacks } from './abandoned-stacks';

const parent = scratchDir('ibs-sweep-test-');
const children: ChildProcess[] = [];

/** A process that runs until killed and names `dir` in its environment (as a service's TMPDIR) or its arguments. */
function runningWith(dir: string, how: 'env' | 'args' | 'pwd', detached: boolean): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...(how === 'args' ? [dir] : [])], {
    env: how === 'env' ? { ...process.env, TMPDIR: dir } : how === 'pwd' ? { ...process.env, PWD: dir } : process.env,
    detached,
    stdio: 'ignore',
  });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5_000);
    child.once('exit', () => (clearTimeout(timer), resolve(true)));
  });
}

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

describe('sweepAbandonedStacks', () => {
  it("stops and removes a stack whose owner is gone, and leaves a live owner's stack, an unclaimed folder and a shell in the folder alone", async () => {
    const abandoned = join(parent, 'ibs-faults-abandoned');
    const pgData = join(parent, 'ibs-private-pg-abandoned');
    const live = join(parent, 'ibs-faults-live');
    const unclaimed = join(parent, 'ibs-faults-unclaimed');
    for (const dir of [abandoned, pgData, live, unclaimed]) mkdirSync(dir);
    const deadPid = spawnSync('true').pid;
    writeFileSync(join(abandoned, 'owner.json'), JSON.stringify({ pid: deadPid, dirs: [abandoned, pgData] }));
    claimStack(live);

    const component = runningWith(abandoned, 'env', true); // a detached component: its whole group goes
    const database = runningWith(pgData, 'args', false); // in this test's own process group: only it goes
    const liveComponent = runningWith(live, 'env', true);
    const unclaimedComponent = runningWith(unclaimed, 'env', true);
    const lookingAtIt = runningWith(abandoned, 'pwd', true); // a shell someone opened in the folder
    await new Promise((resolve) => setTimeout(resolve, 200)); // their /proc entries hold the new environment

    expect(await sweepAbandonedStacks(parent)).toEqual(['ibs-faults-abandoned']);

    expect(await exited(component)).toBe(true);
    expect(await exited(database)).toBe(true);
    expect([existsSync(abandoned), existsSync(pgData)]).toEqual([false, false]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // a killed one would have been reaped by now
    const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
    expect([liveComponent, unclaimedComponent, lookingAtIt].map(running)).toEqual([true, true, true]);
    expect([existsSync(live), existsSync(unclaimed)]).toEqual([true, true]);
    // This process, in the group of the process the sweep killed alone, still runs (the assertions above ran).
    rmSync(parent, { recursive: true, force: true });
  });
});
