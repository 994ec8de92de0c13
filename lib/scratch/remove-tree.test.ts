import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WITHOUT_DAC_OVERRIDE } from '../../test/support/unprivileged';

/**
 * Runs `removal` ('rm': node's recursive rm; 'removeTree') on `path` in a child that cannot write into folders it
 * may not write to, as the service's non-root image; answers what it printed: 'removed' or the error's code.
 */
function removeUnprivileged(removal: 'rm' | 'removeTree', path: string): string {
  const call = removal === 'rm'
    ? "require('node:fs/promises').rm(process.argv[1], { recursive: true, force: true })"
    : `require(${JSON.stringify(join(__dirname, 'remove-tree.ts'))}).removeTree(process.argv[1])`;
  const [command, ...args] = [...WITHOUT_DAC_OVERRIDE, process.execPath, '--import', 'tsx', '-e', `${call}.then(() => console.log('removed'), (err) => console.log(err.code))`, path];
  const child = spawnSync(command!, args, { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  return child.stdout.trim();
}

describe('removeTree, run as a process that is not allowed to write into read-only folders', () => {
  let dir: string;
  let tree: string;
  let outside: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ibs-remove-tree-'));
    tree = join(dir, 'tree');
    // A context's folders as extracted: read-only, one inside another, one without any permission, and a link out.
    mkdirSync(join(tree, 'ro', 'sub'), { recursive: true });
    mkdirSync(join(tree, 'closed'));
    writeFileSync(join(tree, 'ro', 'file'), 'a');
    writeFileSync(join(tree, 'ro', 'sub', 'file'), 'b', { mode: 0o444 });
    writeFileSync(join(tree, 'closed', 'file'), 'c');
    // A read-only folder outside the tree, which a link inside it names: removing the tree must not open it.
    outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'kept'), 'd');
    symlinkSync(outside, join(tree, 'ro', 'link'));
    chmodSync(outside, 0o555);
    chmodSync(join(tree, 'ro', 'sub'), 0o555);
    chmodSync(join(tree, 'ro'), 0o555);
    chmodSync(join(tree, 'closed'), 0o000);
  });
  afterEach(() => {
    chmodSync(outside, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });

  it("is needed: node's recursive rm leaves such a tree behind with EACCES", () => {
    expect(removeUnprivileged('rm', tree)).toBe('EACCES');
    expect(existsSync(join(tree, 'ro', 'sub', 'file'))).toBe(true);
  });

  it('removes the whole tree, and leaves what a link in it names as it was', () => {
    expect(removeUnprivileged('removeTree', tree)).toBe('removed');
    expect(existsSync(tree)).toBe(false);
    expect(statSync(outside).mode & 0o777).toBe(0o555);
    expect(readFileSync(join(outside, 'kept'), 'utf8')).toBe('d');
  });

  it('does nothing for a path that is not there', () => {
    expect(removeUnprivileged('removeTree', join(dir, 'missing'))).toBe('removed');
  });
});
