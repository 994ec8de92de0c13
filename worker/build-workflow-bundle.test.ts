import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TRACED_WORKFLOW_BUNDLE,
  TRACING_INTERCEPTORS_MARK as TRACING_MARK,
  WORKFLOW_BUNDLE,
  prebuiltWorkflowBundle,
  workflowBundleMismatch,
  writeWorkflowBundle,
} from './build-workflow-bundle';

const SOURCES = join(__dirname, '..', 'workflows', 'index.ts');

describe('the prebuilt workflow bundles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-bundles-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are written with the tracing interceptors only when traced', async () => {
    await writeWorkflowBundle(join(dir, WORKFLOW_BUNDLE), { traced: false, workflowsPath: SOURCES });
    await writeWorkflowBundle(join(dir, TRACED_WORKFLOW_BUNDLE), { traced: true, workflowsPath: SOURCES });
    const plain = await readFile(join(dir, WORKFLOW_BUNDLE), 'utf8');
    const traced = await readFile(join(dir, TRACED_WORKFLOW_BUNDLE), 'utf8');
    for (const bundle of [plain, traced]) expect(bundle).toContain('imageBuild');
    expect(plain).not.toContain(TRACING_MARK);
    expect(traced).toContain(TRACING_MARK);
  }, 180_000);

  it('a worker loads the plain one when it exports no traces and the traced one when it does', () => {
    expect(prebuiltWorkflowBundle(dir, false)).toEqual({ codePath: join(dir, WORKFLOW_BUNDLE) });
    expect(prebuiltWorkflowBundle(dir, true)).toEqual({ codePath: join(dir, TRACED_WORKFLOW_BUNDLE) });
  });

  it('WORKFLOW_BUNDLE_PATH wins whatever the tracing; without any bundle the sources are bundled at start', async () => {
    const named = join(dir, 'named.js');
    await writeFile(named, '');
    expect(prebuiltWorkflowBundle(dir, true, named)).toEqual({ codePath: named });
    expect(prebuiltWorkflowBundle(join(dir, 'none'), false)).toBeUndefined();
  });

  it('a WORKFLOW_BUNDLE_PATH that names no file stops the start instead of falling back to the sources', () => {
    const missing = join(dir, 'missing.js');
    expect(() => prebuiltWorkflowBundle(dir, false, missing)).toThrow(`WORKFLOW_BUNDLE_PATH names ${missing}, which does not exist`);
  });

  it('a named bundle that does not match the tracing setting is named in a warning, either way', () => {
    const plain = join(dir, WORKFLOW_BUNDLE);
    const traced = join(dir, TRACED_WORKFLOW_BUNDLE);
    expect(workflowBundleMismatch(plain, false)).toBeUndefined();
    expect(workflowBundleMismatch(traced, true)).toBeUndefined();
    expect(workflowBundleMismatch(plain, true)).toContain(`WORKFLOW_BUNDLE_PATH names ${plain}, a bundle without the tracing interceptors`);
    expect(workflowBundleMismatch(traced, false)).toContain(`WORKFLOW_BUNDLE_PATH names ${traced}, a bundle with the tracing interceptors`);
  });
});
