/**
 * Prebuilds the workflow bundles so production workers start without running webpack: one plain, one with the
 * tracing interceptors. A worker exporting no traces loads the plain one (1.7 MB against 3.6): the interceptors would
 * open and drop a span around every workflow call and activation for nothing (measured in docs/benchmarks.md).
 * Neither issues commands of its own, so a run replays on either.
 */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WORKFLOW_TRACING_MODULE } from '../lib/telemetry/tracing';

export const WORKFLOW_BUNDLE = 'workflow-bundle.js';
export const TRACED_WORKFLOW_BUNDLE = 'workflow-bundle-traced.js';
/** What only the tracing interceptors module brings into a bundle. */
export const TRACING_INTERCEPTORS_MARK = 'OpenTelemetryInboundInterceptor';

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

/**
 * Why the bundle WORKFLOW_BUNDLE_PATH names does not suit the worker's tracing setting, or undefined when it does:
 * without the interceptors the workflows' spans are missing from exported traces; with them and no traces exported,
 * every workflow call and activation opens and drops a span for nothing.
 */
export function workflowBundleMismatch(codePath: string, traced: boolean): string | undefined {
  const carriesTracing = readFileSync(codePath, 'utf8').includes(TRACING_INTERCEPTORS_MARK);
  if (traced && !carriesTracing) {
    return `WORKFLOW_BUNDLE_PATH names ${codePath}, a bundle without the tracing interceptors, while this worker exports traces: the workflows' spans will be missing; write it with { traced: true } or unset WORKFLOW_BUNDLE_PATH`;
  }
  if (!traced && carriesTracing) {
    return `WORKFLOW_BUNDLE_PATH names ${codePath}, a bundle with the tracing interceptors, while this worker exports no traces: they cost CPU on every workflow task for nothing; write it with { traced: false } or unset WORKFLOW_BUNDLE_PATH`;
  }
  return undefined;
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
