/** Where build contexts live in the service bucket. */
import { randomUUID } from 'node:crypto';

/**
 * Contexts streamed to storage while they arrive (api/builds/streamed-context.ts) get a key of their own: the digest
 * is known only once the last byte arrived.
 */
export const STREAMED_CONTEXTS_PREFIX = 'contexts/uploads/';

export const streamedContextKey = (): string => `${STREAMED_CONTEXTS_PREFIX}${randomUUID()}`;

/** A context stored once it was received whole (a zip's tar.gz, a fetched source, an upload past the streaming limit). */
export const contextKeyOf = (sha256: string): string => `contexts/sha256/${sha256}`;
