/** What a build's workflow told Temporal's visibility, read back from its history. */
import type { Client } from '@temporalio/client';
import { searchAttributes, workflowIdForBuild } from '../../workflows/definitions';

/** The values the workflow gave its IbsStatus search attribute, in order (a value set twice in a row counts once). */
export async function searchAttributeStatuses(client: Client, buildId: string): Promise<string[]> {
  const handle = client.workflow.getHandle(workflowIdForBuild(buildId));
  // The Build is recorded as finished just before the workflow's last command: wait until the workflow has closed.
  await handle.result().catch(() => undefined);
  const history = await handle.fetchHistory();
  const values = (history.events ?? []).flatMap((e) => {
    const payload = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.[searchAttributes.status.name];
    return payload?.data ? [JSON.parse(Buffer.from(payload.data).toString('utf8')) as string] : [];
  });
  return values.filter((v, i) => v !== values[i - 1]);
}
