/**
 * Prebuilds the workflow bundles so production workers start without running webpack: plain or with the tracing
 * interceptors, and each of those with Temporal's failure converter or with the one that seals failures' messages
 * (lib/temporal/failure-converter.ts, for TEMPORAL_PAYLOAD_ENCRYPTION_KEYS). A worker exporting no traces loads a
 * plain one (1.7 MB against 3.6): the interceptors would open and drop a span around every workflow call and
 * activation for nothing (measured in docs/benchmarks.md). None issues commands of its own, so a run replays on any.
 */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WORKFLOW_TRACING_MODULE } from '../lib/telemetry/tracing';
import { SEALED_FAILURES_MARK } from '../lib/temporal/failure-converter';
import { SEALED_FAILURE_CONVERTER_PATH } from '../lib/temporal/payload-encryption';

/** What a bundle carries: the tracing interceptors, and the failure converter that seals failures' messages. */
export interface BundleKind {
  traced: boolean;
  sealed: boolean;
}

export const WORKFLOW_BUNDLE = workflowBundleName({ traced: false, sealed: false });
export const TRACED_WORKFLOW_BUNDLE = workflowBundleName({ traced: true, sealed: false });
/** What only the tracing interceptors module brings into a bundle. */
export const TRACING_INTERCEPTORS_MARK = 'OpenTelemetryInboundInterceptor';

/** The file name of the prebuilt bundle of a kind: workflow-bundle[-traced][-sealed].js. */
export function workflowBundleName(kind: BundleKind): string {
  return `workflow-bundle${kind.traced ? '-traced' : ''}${kind.sealed ? '-sealed' : ''}.js`;
}

/**
 * The workflow bundle of a kind, written to `out`; also what tests give WORKFLOW_BUNDLE_PATH (they name the sources,
 * workflows/index.ts, which their module loader does not resolve from the folder).
 */
export async function writeWorkflowBundle(out: string, options: Partial<BundleKind> & { workflowsPath?: string }): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: options.workflowsPath ?? require.resolve('../workflows'),
    workflowInterceptorModules: options.traced ? [WORKFLOW_TRACING_MODULE] : [],
    failureConverterPath: options.sealed ? SEALED_FAILURE_CONVERTER_PATH : undefined,
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
 * matches whether traces are exported and payloads sealed. Undefined when there is none: the worker bundles the
 * sources at start.
 * A named bundle that is not there stops the start: an operator who names one expects it, not a silent fallback
 * to bundling the sources (slow, and with the interceptors chosen by the tracing setting rather than by them).
 */
export function prebuiltWorkflowBundle(dir: string, kind: BundleKind, explicitBundle?: string): { codePath: string } | undefined {
  if (explicitBundle !== undefined) {
    if (!existsSync(explicitBundle)) {
      throw new WorkflowBundleError(
        `WORKFLOW_BUNDLE_PATH names ${explicitBundle}, which does not exist: write it with worker/build-workflow-bundle.ts, or unset WORKFLOW_BUNDLE_PATH to load the bundle beside the worker`,
      );
    }
    return { codePath: explicitBundle };
  }
  const bundle = join(dir, workflowBundleName(kind));
  return existsSync(bundle) ? { codePath: bundle } : undefined;
}

/**
 * Why the bundle WORKFLOW_BUNDLE_PATH names does not suit the worker's tracing setting, or undefined when it does:
 * without the interceptors the workflows' spans are missing from exported traces; with them and no traces exported,
 * every workflow call and activation opens and drops a span for nothing.
 */
export function workflowBundleMismatch(codePath: string, traced: boolean): string | undefined {
  const carriesTracing = bundleCarries(codePath, TRACING_INTERCEPTORS_MARK);
  if (traced && !carriesTracing) {
    return `WORKFLOW_BUNDLE_PATH names ${codePath}, a bundle without the tracing interceptors, while this worker exports traces: the workflows' spans will be missing; write it with { traced: true } or unset WORKFLOW_BUNDLE_PATH`;
  }
  if (!traced && carriesTracing) {
    return `WORKFLOW_BUNDLE_PATH names ${codePath}, a bundle with the tracing interceptors, while this worker exports no traces: they cost CPU on every workflow task for nothing; write it with { traced: false } or unset WORKFLOW_BUNDLE_PATH`;
  }
  return undefined;
}

/**
 * Why the bundle WORKFLOW_BUNDLE_PATH names must not run with the worker's payload keys, or undefined when it may:
 * a bundle without the sealing failure converter would put the workflows' failure messages in the history in the
 * clear while the operator has asked for them to be sealed. (A sealing bundle without keys only moves the messages
 * into a payload Temporal's tools still read, so it may run.)
 */
export function unsealedBundleError(codePath: string, sealed: boolean): string | undefined {
  if (!sealed || bundleCarries(codePath, SEALED_FAILURES_MARK)) return undefined;
  return `WORKFLOW_BUNDLE_PATH names ${codePath}, a bundle without the failure converter that seals failures, while TEMPORAL_PAYLOAD_ENCRYPTION_KEYS is set: the workflows' failure messages would reach Temporal in the clear; write it with { sealed: true } or unset WORKFLOW_BUNDLE_PATH`;
}

function bundleCarries(codePath: string, mark: string): boolean {
  return readFileSync(codePath, 'utf8').includes(mark);
}

if (require.main === module) {
  const kinds = [false, true].flatMap((traced) => [false, true].map((sealed) => ({ traced, sealed })));
  const written = kinds.map(async (kind) => {
    const out = join(__dirname, workflowBundleName(kind));
    await writeWorkflowBundle(out, kind);
    console.log(`workflow bundle written to ${out}`);
  });
  Promise.all(written).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
