/** Route contracts of /v1/builds; the OpenAPI document is generated from them. */
import { createRoute, z } from '@hono/zod-openapi';
import { BuildIdParams, BuildPageSchema, BuildSchema, BuildSpecSchema, ErrorSchema, ListQuery } from './builds.schemas';

const json = <T extends z.ZodType>(schema: T, description: string) => ({ content: { 'application/json': { schema } }, description });
const errors = {
  400: json(ErrorSchema, 'The request is invalid; `error.code` says why and `error.field` which part'),
  404: json(ErrorSchema, 'No such build'),
  429: json(ErrorSchema, 'The consumer has BUILD_MAX_UNFINISHED_PER_CONSUMER builds queued or under way (`too_many_unfinished_builds`, with Retry-After); nothing was read or stored'),
  503: json(ErrorSchema, 'PostgreSQL (`database_unavailable`, with Retry-After) or Temporal is unreachable, object storage failed (`storage_unavailable`), or a host name of the request could not be looked up (`dns_unavailable`); retry later'),
};

export const createBuildRoute = createRoute({
  method: 'post',
  path: '/v1/builds',
  summary: 'Start a build',
  description:
    'multipart/form-data with a `spec` part (JSON BuildSpec) and one source part: `context` (tar, tar.gz or zip, told apart by their magic bytes; a zip is stored as the equivalent tar.gz) or `image` (a `docker save` tarball or an OCI image layout archive, pushed without a build). Send the `spec` part before the context: the Dockerfile it names is then kept as the context arrives, instead of read back from the spooled upload afterwards. ' +
    'Or application/json: the BuildSpec itself, naming exactly one of `context` or `imageArchive` (an archive already in object storage under consumers/<consumer>/, with its sha256) or `sourceImage` (an image to copy). See docs/sources.md. ' +
    'Every /v1 call needs Authorization: Bearer <token> (401 authentication_required / invalid_token / token_expired). Optional headers: Idempotency-Key; X-Consumer (operators only: the consumer the build is for). The Dockerfile is checked before anything is stored (base_image_denied, frontend_not_allowed, entitlement_not_allowed, add_url_not_allowed, proxy_arg_declared, target_registry_not_allowed).',
  request: {
    body: {
      required: true,
      content: {
        'multipart/form-data': {
          schema: z.object({
            spec: BuildSpecSchema,
            context: z.string().optional().openapi({ format: 'binary' }),
            image: z.string().optional().openapi({ format: 'binary' }),
          }),
        },
        'application/json': { schema: BuildSpecSchema },
      },
    },
  },
  responses: {
    200: json(BuildSchema, 'An identical earlier build succeeded and the registry still serves its digest at every tag: that build, with `reusedFrom`; nothing was built'),
    202: json(BuildSchema, 'The build was accepted and queued; or an identical build still under way answers it (that build, with `reusedFrom`)'),
    400: errors[400],
    403: json(ErrorSchema, 'A stored artifact key outside the consumer\'s prefix (`artifact_key_forbidden`), or a consumer\'s token with an X-Consumer header naming another consumer (`consumer_mismatch`)'),
    404: json(ErrorSchema, 'A stored artifact that is not in object storage (`artifact_not_found`)'),
    415: json(ErrorSchema, 'Neither multipart/form-data nor application/json'),
    429: errors[429],
    503: errors[503],
  },
});

export const listBuildsRoute = createRoute({
  method: 'get',
  path: '/v1/builds',
  summary: 'List builds, newest first',
  description: 'Filters: `status`, `consumer` (operators; a consumer lists its own builds), `image`, `since` (created at or after an RFC 3339 timestamp). `nextCursor` is set when the page is full; send it back as `cursor` for the next page. A bad value is a 400 `invalid_request` (or `invalid_cursor`) naming the parameter.',
  request: { query: ListQuery },
  responses: { 200: json(BuildPageSchema, 'A page of builds'), 400: errors[400], 503: errors[503] },
});

export const getBuildRoute = createRoute({
  method: 'get',
  path: '/v1/builds/{id}',
  summary: 'Read a build',
  request: { params: BuildIdParams },
  responses: { 200: json(BuildSchema, 'The build'), 400: errors[400], 404: errors[404], 503: errors[503] },
});

export const getLogsRoute = createRoute({
  method: 'get',
  path: '/v1/builds/{id}/logs',
  summary: 'Read the stored build log, or follow it live',
  request: { params: BuildIdParams, query: z.object({ follow: z.enum(['true', 'false']).optional() }) },
  responses: {
    200: {
      content: { 'text/plain': { schema: z.string() }, 'text/event-stream': { schema: z.string() } },
      description: 'The log so far; with follow=true, `log` events until an `end` event with the final status',
    },
    400: errors[400],
    404: errors[404],
    503: errors[503],
  },
});

export const cancelBuildRoute = createRoute({
  method: 'post',
  path: '/v1/builds/{id}/cancel',
  summary: 'Cancel a queued or running build',
  request: { params: BuildIdParams },
  responses: {
    202: json(BuildSchema, 'Cancellation requested'),
    400: json(ErrorSchema, 'The build id is not a UUID (`invalid_build_id`)'),
    404: errors[404],
    409: json(ErrorSchema, 'The build already finished (`build_finished`)'),
    503: errors[503],
  },
});

export const retryBuildRoute = createRoute({
  method: 'post',
  path: '/v1/builds/{id}/retry',
  summary: 'Run a failed or cancelled build again',
  description: 'A build that failed after its image was pushed by digest (in the push step today; scan upload and signing when they run) resumes from that step while the registry still holds the image; otherwise it is rebuilt. Each attempt is listed under `attempts`.',
  request: { params: BuildIdParams },
  responses: {
    202: json(BuildSchema, 'The build was queued again'),
    400: json(ErrorSchema, 'The build id is not a UUID (`invalid_build_id`); or the build may no longer run or push where it would (`engine_not_allowed`, `target_registry_not_allowed`, `target_repository_not_allowed`), or, when it would build or copy again, no longer read an image it reads (`image_of_another_consumer`, `base_image_denied`, `source_registry_not_allowed` and the other checks of a new request, on its stored Dockerfile or spec): the deployment changed them since it was accepted'),
    404: errors[404],
    409: json(ErrorSchema, 'The build is not failed or cancelled (`build_not_retryable`), or its stored context is no longer in object storage (`context_missing`)'),
    429: errors[429],
    503: errors[503],
  },
});

export const getScanReportRoute = createRoute({
  method: 'get',
  path: '/v1/builds/{id}/scan-report',
  summary: "Read the scanner's report of a build (imageBuilder.imageScanner)",
  request: { params: BuildIdParams },
  responses: {
    200: { content: { 'application/json': { schema: z.unknown() } }, description: 'The report as the scanner wrote it' },
    400: errors[400],
    404: json(ErrorSchema, 'No such build (`build_not_found`) or no report for it (`scan_report_not_available`)'),
    503: errors[503],
  },
});
