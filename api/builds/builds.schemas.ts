/** Request and response schemas of the builds resource; they also generate /openapi.json. */
import { z } from '@hono/zod-openapi';
import { isQuantity } from '../../lib/config/quantity';
import { R_PACKAGE } from '../../lib/dependencies/dockerfile';
import { BUILD_ENGINES, BUILD_STATUSES, BUILD_STEPS } from '../../workflows/definitions';
import { isStorableText } from './spec-limits';
import { exactUtc } from './timestamps';

const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\-/]*$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const TARGET = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const stringMap = (keyPattern: RegExp, what: string, maxEntries: number) =>
  z
    .record(z.string().regex(keyPattern, `${what} names may contain letters, digits and _ (labels also . - /)`), z.string().max(8192))
    .refine((m) => Object.keys(m).length <= maxEntries, `at most ${maxEntries} entries`);

const quantity = z.string().max(64).refine(isQuantity, 'must be a Kubernetes quantity such as 2, 500m, 4G or 4Gi');
const ResourceQuantitiesSchema = z.strictObject({ cpu: quantity.optional(), memory: quantity.optional(), ephemeralStorage: quantity.optional() });

const StoredArtifactSchema = z
  .strictObject({
    key: z.string().min(1).max(1024),
    sha256: z.string().regex(/^[a-f0-9]{64}$/, 'sha256 is the archive\'s hex sha256 (64 lowercase hex digits)'),
  })
  .openapi({ description: 'An archive already in the service\'s object storage, under consumers/<consumer>/ (docs/sources.md)' });

/** The Dockerfile a spec names when it names none. */
export const DEFAULT_DOCKERFILE = 'Dockerfile';

export const BuildSpecSchema = z
  .strictObject({
    image: z.string({ error: 'image is required: the target reference registry/repository:tag' }).min(1).max(512),
    dockerfile: z.string().min(1).max(1024).default(DEFAULT_DOCKERFILE),
    buildArgs: stringMap(ARG_NAME, 'build argument', 200).default({}),
    target: z.string().regex(TARGET, 'target must be a stage name').max(128).optional(),
    labels: stringMap(LABEL_KEY, 'label', 200).default({}),
    platforms: z.array(z.string().regex(PLATFORM, 'platforms look like linux/amd64 or linux/arm64/v8')).min(1).max(8).default(['linux/amd64']),
    engine: z.enum(BUILD_ENGINES).optional(),
    timeoutSeconds: z.number().int().min(10).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    resources: z
      .strictObject({ requests: ResourceQuantitiesSchema.optional(), limits: ResourceQuantitiesSchema.optional() })
      .optional()
      .openapi({
        description: "The builder pod's requests and limits (kubernetes executor; the local executor ignores them), each up to the operator's IMAGE_BUILDER_MAX_RESOURCES_*; in QEMU mode the VM gets the memory limit less QEMU's share, so a BuildKit build's limit must be at least 888Mi",
        example: { limits: { memory: '8G' } },
      }),
    tags: z
      .array(z.string().max(512))
      .optional()
      .openapi({
        description: "More tags of `image`'s repository, all pointing at the build's digest: bare tags (`1.2.3`) or full references of the same repository; at most 16",
        example: ['1.2.3-4f2a', 'latest'],
      }),
    overwrite: z
      .boolean()
      .optional()
      .openapi({ description: 'Move a tag the registry already serves with another digest; without it such a build fails with `tag_exists` before anything is pushed' }),
    reuse: z
      .boolean()
      .optional()
      .openapi({ description: 'false: always build afresh; by default an identical earlier request (same context, Dockerfile, arguments, labels, target, platforms, engine, image and tags) answers this one' }),
    context: StoredArtifactSchema.optional().openapi({ description: 'JSON requests: a stored build context (tar, tar.gz or zip) to build' }),
    imageArchive: StoredArtifactSchema.optional().openapi({ description: 'JSON requests: a stored docker save / OCI layout archive to push without a build' }),
    sourceImage: z.string().min(1).max(512).optional().openapi({ description: 'JSON requests: an image to copy to `image` without a build, registry/repository[:tag][@sha256:...]' }),
    dependencies: z
      .strictObject({
        baseImage: z.string().min(1).max(512),
        python: z.strictObject({ requirements: z.string().min(1).max(1024).default('requirements.txt') }).optional(),
        r: z.strictObject({ packages: z.array(z.string().max(128).regex(R_PACKAGE, 'R package names are letters, digits and dots, starting with a letter')).min(1).max(200) }).optional(),
      })
      .refine((d) => (d.python === undefined) !== (d.r === undefined), 'give exactly one of dependencies.python or dependencies.r')
      .optional()
      .openapi({
        description:
          'A dependency build: no Dockerfile; the service writes one that starts FROM baseImage and installs the context\'s requirements file with pip, or the listed R packages from CRAN, through the configured index, CRAN mirror and proxy (CUSTOM_MODEL_DEPENDENCIES_*)',
        example: { baseImage: 'registry.example.com/base/python:3.12', python: { requirements: 'requirements.txt' } },
      }),
  })
  .openapi('BuildSpec');

const BuildAttemptSchema = z.object({
  attempt: z.number().int(),
  status: z.enum(['succeeded', 'failed', 'cancelled']),
  step: z.enum(BUILD_STEPS).optional().openapi({ description: 'The step the attempt ended in' }),
  digest: z.string().optional(),
  resumedFrom: z.enum(BUILD_STEPS).optional().openapi({ description: 'The step a resumed retry started from (the build step was skipped)' }),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string(),
});

export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) })
  .openapi('Error');

export const BuildSchema = z
  .object({
    id: z.string().uuid(),
    status: z.enum(BUILD_STATUSES),
    image: z.string(),
    tags: z.array(z.string()).openapi({ description: "Every reference the build points at its digest: `image` first, then the spec's `tags`" }),
    digest: z.string().nullable(),
    spec: BuildSpecSchema,
    consumer: z.string(),
    attempt: z.number().int(),
    attempts: z.array(BuildAttemptSchema).openapi({ description: 'The attempts that ended, oldest first, each with its error' }),
    reusedFrom: z.string().uuid().nullable().openapi({ description: 'Set in the answer to a request that an identical earlier build answered: that build, whose id this is' }),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    queuePosition: z.number().int().nullable().openapi({
      description: 'Place in the fair build queue while the build waits for a slot (1 = next to start), at most about a second old; null before the build has asked for a slot and once it holds one',
    }),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    scan: z
      .object({
        passed: z.boolean(),
        reportUrl: z.string().nullable(),
        summary: z
          .object({ format: z.enum(['trivy', 'snyk', 'unknown']), findings: z.record(z.string(), z.number()).optional(), bySeverity: z.record(z.string(), z.number()).optional() })
          .nullable(),
        scanner: z.object({ image: z.string(), digest: z.string() }).openapi({ description: 'The scanner image as configured and the digest that ran' }),
      })
      .nullable(),
    signature: z
      .object({ digest: z.string().nullable(), profile: z.string(), verified: z.boolean() })
      .nullable()
      .openapi({ description: 'The notation signature of the pushed digest; verified false marks an image left unsigned' }),
    source: z
      .object({
        kind: z.enum(['context', 'image-archive', 'image-uri']),
        format: z.enum(['oci-layout', 'docker-save']).optional(),
        archiveDigest: z.string().optional(),
        reference: z.string().optional(),
      })
      .openapi({ description: 'Where the image came from: a built context, an uploaded image archive, or a copied image URI' }),
    policyExemption: z
      .object({ reason: z.enum(['trusted_consumer']), images: z.array(z.string()) })
      .nullable()
      .openapi({ description: 'Set when the build used base images the deny/allow lists refuse, allowed because its consumer is trusted by the operator' }),
    traceId: z.string().nullable().openapi({ description: 'OpenTelemetry trace id of the request that started the build (null when tracing is off)' }),
    links: z.object({ self: z.string(), logs: z.string(), temporal: z.string() }),
  })
  .openapi('Build');

export const BuildPageSchema = z.object({ items: z.array(BuildSchema), nextCursor: z.string().nullable() }).openapi('BuildPage');

export const BuildIdParams = z.object({
  id: z.string().uuid().openapi({ param: { name: 'id', in: 'path' }, example: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' }),
});

// PostgreSQL's text refuses the NUL character: a filter holding one is the caller's mistake, not the database's.
const filterText = (max: number) => z.string().max(max).refine(isStorableText, 'must not contain a NUL character (%00); remove it');

export const ListQuery = z.object({
  status: z.enum(BUILD_STATUSES).optional(),
  consumer: filterText(64).optional(),
  image: filterText(512).optional(),
  since: z
    .string()
    .max(64)
    .refine((text) => exactUtc(text) !== undefined, 'must be an RFC 3339 timestamp such as 2026-12-01T15:00:00Z or 2026-12-01T17:00:00%2B02:00 (a + in the query string must be sent as %2B)')
    .optional()
    .openapi({ description: 'Only builds created at or after this instant: an RFC 3339 timestamp, compared to the microsecond', example: '2026-12-01T15:00:00Z' }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});
