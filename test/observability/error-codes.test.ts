/**
 * Every code a build can end with is documented: the codes are collected from the source that produces them (the
 * executors' BuildFailedErrors, pod-state's failures, the activities' non-retryable failures, the codes the
 * workflow and the API record themselves) and each must be a row of the build-errors table of docs/errors.md.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const SOURCES = ['lib/executors', 'activities', 'workflows', 'api/builds/submission.ts', 'worker/reconciler.ts'];
const PRODUCERS = [
  /new BuildFailedError\(\s*'([a-z_]+)'/g, // executors
  /\bfailed\(\s*'([a-z_]+)'/g, // pod-state's failures
  /\bnonRetryable\(\s*'([a-z_]+)'/g, // activities
  /\{\s*code:\s*'([a-z_]+)'/g, // codes the workflow and the API record directly
];

function sourceFiles(path: string): string[] {
  const full = join(root, path);
  if (!statSync(full).isDirectory()) return [full];
  return readdirSync(full).flatMap((name) => sourceFiles(join(path, name))).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
}

function buildErrorCodesInCode(): Map<string, string> {
  const codes = new Map<string, string>();
  for (const file of SOURCES.flatMap(sourceFiles)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of PRODUCERS) for (const match of text.matchAll(pattern)) codes.set(match[1]!, relative(root, file));
  }
  return codes;
}

function documentedBuildErrorCodes(): Set<string> {
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  const section = doc.slice(doc.indexOf("## Build errors"), doc.indexOf('\n## ', doc.indexOf('## Build errors') + 1));
  const codes = new Set<string>();
  for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
    const cells = row.split('|');
    for (const m of cells[1]!.matchAll(/`([a-z_]+)`/g)) codes.add(m[1]!);
    // Each row says what to do: its last cell is not empty.
    expect(cells.at(-2)?.trim(), `docs/errors.md row ${cells[1]!.trim()} says what to do`).not.toBe('');
  }
  return codes;
}

describe('build error codes', () => {
  it('every code a build can end with is in docs/errors.md with what to do', () => {
    const inCode = buildErrorCodesInCode();
    // The collector finds the codes it must (so a broken pattern cannot make this pass on an empty set).
    for (const known of ['builder_oom_killed', 'builder_evicted', 'builder_unschedulable', 'push_failed', 'build_timeout', 'internal_error', 'cancelled', 'workflow_start_failed']) {
      expect([...inCode.keys()]).toContain(known);
    }
    const documented = documentedBuildErrorCodes();
    const missing = [...inCode].filter(([code]) => !documented.has(code)).map(([code, file]) => `${code} (${file})`);
    expect(missing).toEqual([]);
  });
});
