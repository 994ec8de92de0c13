/** Prebuilds the workflow bundle so production workers start without running webpack. */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WORKFLOW_TRACING_MODULE } from '../lib/telemetry/tracing';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    workflowInterceptorModules: [WORKFLOW_TRACING_MODULE],
    logger: new DefaultLogger('WARN'),
  });
  const out = join(__dirname, 'workflow-bundle.js');
  await writeFile(out, code);
  console.log(`workflow bundle written to ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
