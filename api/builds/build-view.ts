/** How a build record is shown to consumers: the Build of the REST contract, with links to itself and to Temporal. */
import type { z } from 'zod';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { tagReferences } from '../../lib/registry/tags';
import { workflowIdForBuild } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';
import type { BuildSchema } from './builds.schemas';

export type Build = z.infer<typeof BuildSchema>;

/** `reusedFrom` is set when the build answers an identical later request. */
export function toBuild(record: BuildRecord, settings: Pick<ApiDeps['settings'], 'publicUrl' | 'temporalUiUrl' | 'namespace'>, reusedFrom: string | null = null): Build {
  const { publicUrl, temporalUiUrl, namespace } = settings;
  return {
    id: record.id,
    status: record.status,
    image: record.image,
    tags: tagReferences(record.image, record.spec.tags),
    digest: record.digest,
    spec: record.spec,
    consumer: record.consumer,
    attempt: record.attempt,
    attempts: record.attempts,
    reusedFrom,
    createdAt: record.createdAt.toISOString(),
    startedAt: record.startedAt?.toISOString() ?? null,
    finishedAt: record.finishedAt?.toISOString() ?? null,
    queuePosition: record.queuePosition,
    error: record.error,
    scan: record.scan ? { passed: record.scan.passed, reportUrl: record.scan.reportUrl, summary: record.scan.summary, scanner: record.scan.scanner } : null,
    signature: record.signature ? { digest: record.signature.digest, profile: record.signature.profile, verified: record.signature.verified } : null,
    source: sourceView(record.source),
    policyExemption: record.policyExemption,
    traceId: record.traceId,
    links: {
      self: `${publicUrl}/v1/builds/${record.id}`,
      logs: `${publicUrl}/v1/builds/${record.id}/logs`,
      temporal: `${temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${workflowIdForBuild(record.id)}`,
    },
  };
}

/** The source as consumers see it: no storage keys. */
function sourceView(source: BuildRecord['source']): Build['source'] {
  if (source.kind === 'image-archive') return { kind: source.kind, format: source.format, archiveDigest: source.archiveDigest };
  if (source.kind === 'image-uri') return { kind: source.kind, reference: source.reference };
  return { kind: 'context' };
}
