/**
 * The codec endpoint of Temporal's Web UI and CLI (`temporal workflow show --codec-endpoint`): with
 * TEMPORAL_PAYLOAD_ENCRYPTION_KEYS set, the payloads in Temporal's history are sealed (lib/temporal/payload-
 * encryption.ts), and an operator's UI or CLI sends them here to read them. Operators only: an opened payload is any
 * consumer's build. Without keys it answers the payloads as they came, so a UI pointed at it works either way.
 * Browsers call it from the Web UI's origin (TEMPORAL_UI_URL), so that origin is allowed by CORS; the preflight is
 * answered before authentication, as browsers send it without the token.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Payload } from '@temporalio/common';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { AppEnv } from '../deps';
import { ApiError } from '../errors';
import { ErrorSchema } from '../builds/builds.schemas';
import { PayloadDecryptionError } from '../../lib/temporal/payload-encryption';

export const CODEC_PATH = '/v1/temporal-codec';
/** A history's payloads are at most 2 MiB each (Temporal's blob limit); the UI sends one event's at a time. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const MAX_PAYLOADS = 1000;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const Base64 = z.string().regex(BASE64, 'must be base64');
const JsonPayload = z.object({ metadata: z.record(z.string(), Base64).optional(), data: Base64.optional() });
const Payloads = z.object({ payloads: z.array(JsonPayload).max(MAX_PAYLOADS) });

const json = <T extends z.ZodType>(schema: T, description: string) => ({ content: { 'application/json': { schema } }, description });

const decodeRoute = createRoute({
  method: 'post',
  path: `${CODEC_PATH}/decode`,
  summary: "Open sealed Temporal payloads (Temporal's codec server protocol), for operators",
  description:
    'The body is `{ "payloads": [...] }` with each payload\'s metadata values and data in base64, as Temporal\'s Web UI and CLI send them; the answer has the same shape, each payload opened with TEMPORAL_PAYLOAD_ENCRYPTION_KEYS (payloads that were not sealed come back as they are). ' +
    `At most ${MAX_PAYLOADS} payloads and 8 MiB. An \`X-Namespace\` header must name the service's Temporal namespace.`,
  request: { body: { required: true, content: { 'application/json': { schema: Payloads } } } },
  responses: {
    200: json(Payloads, 'The payloads, opened'),
    400: json(ErrorSchema, 'The body is not payloads (`invalid_request`), the namespace is another (`namespace_mismatch`), or a payload does not open (`payload_not_decodable`: sealed with a key no longer listed, or altered)'),
    403: json(ErrorSchema, 'The caller is not an operator (`operator_required`)'),
    413: json(ErrorSchema, 'The body is over 8 MiB (`body_too_large`)'),
  },
});

const fromJson = (p: z.infer<typeof JsonPayload>): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload): z.infer<typeof JsonPayload> => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

/** The CORS answer for the Web UI's origin; registered before authentication (app.ts). */
export function codecCors(temporalUiUrl: string) {
  return cors({
    origin: new URL(temporalUiUrl).origin,
    allowMethods: ['POST'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Namespace'],
    credentials: true,
    maxAge: 600,
  });
}

export function temporalCodecRouter(router: OpenAPIHono<AppEnv>): void {
  // Before the body is read or validated: a consumer learns only that this is not for it.
  router.use(`${CODEC_PATH}/*`, async (c, next) => {
    if (c.get('principal').role !== 'operator') {
      throw new ApiError(403, 'operator_required', "opening Temporal's payloads is for operators: use an operator's token");
    }
    await next();
  });
  router.use(
    `${CODEC_PATH}/*`,
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError(413, 'body_too_large', `send at most 8 MiB of payloads per request (Temporal's UI sends one event's at a time)`);
      },
    }),
  );
  router.openapi(decodeRoute, async (c) => {
    const { settings, payloadCodec } = c.get('deps');
    const namespace = c.req.header('x-namespace');
    if (namespace !== undefined && namespace !== settings.namespace) {
      throw new ApiError(400, 'namespace_mismatch', `this service's payloads are in the Temporal namespace ${settings.namespace}, not ${namespace}; point the codec endpoint of that namespace elsewhere`);
    }
    const payloads = c.req.valid('json').payloads.map(fromJson);
    try {
      const opened = payloadCodec ? await payloadCodec.decode(payloads) : payloads;
      return c.json({ payloads: opened.map(toJson) }, 200);
    } catch (err) {
      if (err instanceof PayloadDecryptionError) throw new ApiError(400, 'payload_not_decodable', err.message);
      throw err;
    }
  });
}
