/** Prebuilds the workflow bundle so production workers start without running webpack. */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WORKFLOW_TRACING_MODULE } from '../lib/telemetry/tracing';

/**
 * The workflow bundle, with the tracing interceptors, written to `out`; also what tests give WORKFLOW_BUNDLE_PATH
 * (they name the sources, workflows/index.ts, which their module loader does not resolve from the folder).
 */
export async function writeWorkflowBundle(out: string, workflowsPath = require.resolve('../workflows')): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: [WORKFLOW_TRACING_MODULE],
    logger: new DefaultLogger('WARN'),
  });
  await writeFile(out, code);
}

if (require.main === module) {
  const out = join(__dirname, 'workflow-bundle.js');
  writeWorkflowBundle(out).then(
    () => console.log(`workflow bundle written to ${out}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
