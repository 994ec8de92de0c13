/**
 * The `ibs` command line end to end, run as a consumer runs it (a child process) against the real API, worker,
 * BuildKit and registry: a folder with a .dockerignore is packed as BuildKit would read it, built and pushed, and
 * the exit code and output say how the build ended.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBaseImage, imageFiles, manifestOf } from '../support/registry';
import { callerHeaders, startTestStack, type TestStack } from '../support/stack';

const ROOT = join(__dirname, '..', '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let stack: TestStack;
let scratch: string;
let base: string;

/** Runs `ibs` with the test stack's API address and, when the API wants one, the test consumer's token. */
function ibs(...args: string[]): Promise<Run> {
  const token = callerHeaders().authorization?.replace(/^Bearer /, '');
  const env = { ...process.env, IBS_API_URL: stack.apiUrl, ...(token ? { IBS_TOKEN: token } : {}) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli/main.ts'), ...args], { env, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function folder(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(scratch, name);
  for (const [path, body] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), body);
  }
  return dir;
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);

beforeAll(async () => {
  base = await ensureBaseImage();
  stack = await startTestStack('cli');
  await stack.startWorker();
  scratch = await mkdtemp(join(tmpdir(), 'ibs-cli-'));
});

afterAll(async () => {
  await stack?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('ibs build', () => {
  it('packs the folder as .dockerignore says, follows the log and prints the digest the registry serves', async () => {
    const dir = await folder('app', {
      Dockerfile: `FROM ${base}\nCOPY . /app\nRUN test ! -e /app/secret.txt && test -e /app/node_modules/keep.txt && echo checked-ignore-rules\n`,
      '.dockerignore': 'secret.txt\nnode_modules\n!node_modules/keep.txt\n',
      'secret.txt': 'must not leave this machine',
      'node_modules/big.js': 'x'.repeat(10_000),
      'node_modules/keep.txt': 'kept',
      'src/main.txt': 'hello',
    });
    // A tag of this run's own: the registry outlives test runs, and a tag it already serves is not moved without overwrite.
    const tag = `1-${Date.now()}`;
    const run = await ibs('build', dir, '-t', `127.0.0.1:5000/cli-test/app:${tag}`, '--build-arg', 'UNUSED=1');
    expect(run.code, run.stderr).toBe(0);
    const digest = run.stdout.trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(run.stderr).toContain('checked-ignore-rules'); // the followed log reached the terminal
    expect((await manifestOf('cli-test/app', tag)).digest).toBe(digest);
    const files = await imageFiles('cli-test/app', tag);
    expect(files.has('app/src/main.txt')).toBe(true);
    expect(files.has('app/node_modules/keep.txt')).toBe(true);
    expect(files.has('app/secret.txt')).toBe(false);
    expect(files.has('app/node_modules/big.js')).toBe(false);

    // The other commands read the same build back.
    const id = /build ([0-9a-f-]{36}) accepted/.exec(run.stderr)?.[1];
    expect(id).toBeDefined();
    const got = await ibs('get', id!);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, status: 'succeeded', digest });
    const logs = await ibs('logs', id!);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('checked-ignore-rules');
    const list = await ibs('list', '--image', `127.0.0.1:5000/cli-test/app:${tag}`);
    expect(list.stdout).toContain(id);
    const since = (at: Date) => ibs('list', '--image', `127.0.0.1:5000/cli-test/app:${tag}`, '--since', at.toISOString());
    expect((await since(new Date(Date.now() - 3_600_000))).stdout).toContain(id);
    const later = await since(new Date(Date.now() + 3_600_000));
    expect(later.code).toBe(0);
    expect(later.stdout).not.toContain(id);
  });

  it('exits 1 with the build error when a step fails', async () => {
    const dir = await folder('failing', { Dockerfile: `FROM ${base}\nRUN echo about-to-fail && exit 3\n` });
    const run = await ibs('build', dir, '-t', '127.0.0.1:5000/cli-test/failing:1');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('about-to-fail');
    expect(run.stderr).toMatch(/build [0-9a-f-]{36} failed: [a-z_]+: /);
    expect(run.stdout).toBe('');
    noStackTrace(run.stderr);
  });

  it('exits 3 with the API\'s own message when the request is refused, and 2 on a wrong command line', async () => {
    const dir = await folder('refused', { Dockerfile: `FROM ${base}\n` });
    const refused = await ibs('build', dir, '-t', 'NOT A REFERENCE');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^ibs: [a-z_]+: .*image/m);
    noStackTrace(refused.stderr);

    const usage = await ibs('build', dir);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('-t registry/repository:tag');
    const missing = await ibs('build', join(scratch, 'no-such-folder'), '-t', '127.0.0.1:5000/cli-test/x:1');
    expect(missing.code).toBe(2);
    noStackTrace(missing.stderr);
  });

  it('exits 4 when the API cannot be reached', async () => {
    const run = await ibs('get', '00000000-0000-4000-8000-000000000000', '--api', 'http://127.0.0.1:9');
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('cannot reach the API at http://127.0.0.1:9');
  });
});

describe('the package', () => {
  it('installs `ibs` from the compiled client', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
    expect(pkg.bin?.ibs).toBe('dist/lib/cli/main.js');
    expect((await readFile(join(ROOT, 'lib/cli/main.ts'), 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
