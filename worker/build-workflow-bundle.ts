/**
 * Prebuilds the workflow bundles so production workers start without running webpack: one plain, one with the
 * tracing interceptors. A worker exporting no traces loads the plain one (1.7 MB against 3.6): the interceptors would
 * open and drop a span around every workflow call and activation for nothing (measured in docs/benchmarks.md).
 * Neither issues commands of its own, so a run replays on either.
 */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WORKFLOW_TRACING_MODULE } from '../lib/telemetry/tracing';

export const WORKFLOW_BUNDLE = 'workflow-bundle.js';
export const TRACED_WORKFLOW_BUNDLE = 'workflow-bundle-traced.js';

/**
 * The workflow bundle, with the tracing interceptors when `traced`, written to `out`; also what tests give
 * WORKFLOW_BUNDLE_PATH (they name the sources, workflows/index.ts, which their module loader does not resolve from
 * the folder).
 */
export async function writeWorkflowBundle(out: string, options: { traced: boolean; workflowsPath?: string }): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: options.workflowsPath ?? require.resolve('../workflows'),
    workflowInterceptorModules: options.traced ? [WORKFLOW_TRACING_MODULE] : [],
    logger: new DefaultLogger('WARN'),
  });
  await writeFile(out, code);
}

/** A WORKFLOW_BUNDLE_PATH the worker cannot load: its message says how to fix it. */
export class WorkflowBundleError extends Error {
  override name = 'WorkflowBundleError';
}

/**
 * The prebuilt bundle a worker loads: the one WORKFLOW_BUNDLE_PATH names, as it is; else the one in `dir` that
 * matches whether traces are exported. Undefined when there is none: the worker bundles the sources at start.
 * A named bundle that is not there stops the start: an operator who names one expects it, not a silent fallback
 * to bundling the sources (slow, and with the interceptors chosen by the tracing setting rather than by them).
 */
export function prebuiltWorkflowBundle(dir: string, traced: boolean, explicitBundle?: string): { codePath: string } | undefined {
  if (explicitBundle !== undefined) {
    if (!existsSync(explicitBundle)) {
      throw new WorkflowBundleError(
        `WORKFLOW_BUNDLE_PATH names ${explicitBundle}, which does not exist: write it with worker/build-workflow-bundle.ts, or unset WORKFLOW_BUNDLE_PATH to load the bundle beside the worker`,
      );
    }
    return { codePath: explicitBundle };
  }
  const bundle = join(dir, traced ? TRACED_WORKFLOW_BUNDLE : WORKFLOW_BUNDLE);
  return existsSync(bundle) ? { codePath: bundle } : undefined;
}

if (require.main === module) {
  const written = [false, true].map(async (traced) => {
    const out = join(__dirname, traced ? TRACED_WORKFLOW_BUNDLE : WORKFLOW_BUNDLE);
    await writeWorkflowBundle(out, { traced });
    console.log(`workflow bundle written to ${out}`);
  });
  Promise.all(written).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
