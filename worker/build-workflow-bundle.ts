/** Prebuilds the workflow bundle so production workers start without running webpack. */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
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
