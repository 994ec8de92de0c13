/** How a build record is shown to consumers: the Build of the REST contract, with links to itself and to Temporal. */
import type { z } from 'zod';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { workflowIdForBuild } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';
import type { BuildSchema } from './builds.schemas';

export type Build = z.infer<typeof BuildSchema>;

export function toBuild(record: BuildRecord, settings: Pick<ApiDeps['settings'], 'publicUrl' | 'temporalUiUrl' | 'namespace'>): Build {
  const { publicUrl, temporalUiUrl, namespace } = settings;
  return {
    id: record.id,
    status: record.status,
    image: record.image,
    digest: record.digest,
    spec: record.spec,
    consumer: record.consumer,
    attempt: record.attempt,
    createdAt: record.createdAt.toISOString(),
    startedAt: record.startedAt?.toISOString() ?? null,
    finishedAt: record.finishedAt?.toISOString() ?? null,
    queuePosition: record.queuePosition,
    error: record.error,
    scan: null,
    signature: null,
    policyExemption: record.policyExemption,
    traceId: record.traceId,
    links: {
      self: `${publicUrl}/v1/builds/${record.id}`,
      logs: `${publicUrl}/v1/builds/${record.id}/logs`,
      temporal: `${temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${workflowIdForBuild(record.id)}`,
    },
  };
}
