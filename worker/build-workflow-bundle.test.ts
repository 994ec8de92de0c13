import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TRACED_WORKFLOW_BUNDLE,
  TRACING_INTERCEPTORS_MARK as TRACING_MARK,
  WORKFLOW_BUNDLE,
  prebuiltWorkflowBundle,
  unsealedBundleError,
  workflowBundleMismatch,
  workflowBundleName,
  writeWorkflowBundle,
} from './build-workflow-bundle';
import { SEALED_FAILURES_MARK } from '../lib/temporal/failure-converter';

const SOURCES = join(__dirname, '..', 'workflows', 'index.ts');

describe('the prebuilt workflow bundles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-bundles-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are written with the tracing interceptors only when traced, and the sealing failure converter only when sealed', async () => {
    await writeWorkflowBundle(join(dir, WORKFLOW_BUNDLE), { traced: false, workflowsPath: SOURCES });
    await writeWorkflowBundle(join(dir, TRACED_WORKFLOW_BUNDLE), { traced: true, workflowsPath: SOURCES });
    await writeWorkflowBundle(join(dir, workflowBundleName({ traced: false, sealed: true })), { sealed: true, workflowsPath: SOURCES });
    const plain = await readFile(join(dir, WORKFLOW_BUNDLE), 'utf8');
    const traced = await readFile(join(dir, TRACED_WORKFLOW_BUNDLE), 'utf8');
    const sealed = await readFile(join(dir, workflowBundleName({ traced: false, sealed: true })), 'utf8');
    for (const bundle of [plain, traced, sealed]) expect(bundle).toContain('imageBuild');
    expect(plain).not.toContain(TRACING_MARK);
    expect(traced).toContain(TRACING_MARK);
    expect(sealed).not.toContain(TRACING_MARK);
    for (const bundle of [plain, traced]) expect(bundle).not.toContain(SEALED_FAILURES_MARK);
    expect(sealed).toContain(SEALED_FAILURES_MARK);
  }, 240_000);

  it('a worker loads the one that matches whether it exports traces and seals payloads', () => {
    expect(prebuiltWorkflowBundle(dir, { traced: false, sealed: false })).toEqual({ codePath: join(dir, WORKFLOW_BUNDLE) });
    expect(prebuiltWorkflowBundle(dir, { traced: true, sealed: false })).toEqual({ codePath: join(dir, TRACED_WORKFLOW_BUNDLE) });
    expect(prebuiltWorkflowBundle(dir, { traced: false, sealed: true })).toEqual({ codePath: join(dir, 'workflow-bundle-sealed.js') });
    expect(workflowBundleName({ traced: true, sealed: true })).toBe('workflow-bundle-traced-sealed.js');
  });

  it('a named bundle without the sealing failure converter stops a worker that seals payloads', () => {
    const plain = join(dir, WORKFLOW_BUNDLE);
    const sealed = join(dir, 'workflow-bundle-sealed.js');
    expect(unsealedBundleError(plain, true)).toContain(`WORKFLOW_BUNDLE_PATH names ${plain}, a bundle without the failure converter that seals failures`);
    expect(unsealedBundleError(sealed, true)).toBeUndefined();
    expect(unsealedBundleError(plain, false)).toBeUndefined();
    expect(unsealedBundleError(sealed, false)).toBeUndefined();
  });

  it('WORKFLOW_BUNDLE_PATH wins whatever the tracing; without any bundle the sources are bundled at start', async () => {
    const named = join(dir, 'named.js');
    await writeFile(named, '');
    expect(prebuiltWorkflowBundle(dir, { traced: true, sealed: false }, named)).toEqual({ codePath: named });
    expect(prebuiltWorkflowBundle(join(dir, 'none'), { traced: false, sealed: false })).toBeUndefined();
  });

  it('a WORKFLOW_BUNDLE_PATH that names no file stops the start instead of falling back to the sources', () => {
    const missing = join(dir, 'missing.js');
    expect(() => prebuiltWorkflowBundle(dir, { traced: false, sealed: false }, missing)).toThrow(`WORKFLOW_BUNDLE_PATH names ${missing}, which does not exist`);
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
