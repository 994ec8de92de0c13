/**
 * The opaque cursor of the paged list: the last row's created_at and id, so a page never repeats or skips a build.
 * created_at travels exactly, to the microsecond as PostgreSQL keeps it: builds recorded within one millisecond
 * would be skipped by a cursor rounded to a JavaScript Date. Cursors issued before carry milliseconds, and still read.
 */
import type { BuildPosition } from '../../lib/db/builds-repository';
import { ApiError } from '../errors';
import { exactUtc } from './timestamps';

// Build ids are UUIDs; anything else would reach PostgreSQL's uuid comparison and fail there.
const BUILD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function encodeCursor(position: BuildPosition): string {
  return Buffer.from(JSON.stringify({ t: position.createdAt, i: position.id })).toString('base64url');
}

export function decodeCursor(cursor: string): BuildPosition {
  try {
    const { t, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { t: unknown; i: unknown };
    const createdAt = typeof t === 'string' ? exactUtc(t) : undefined;
    if (createdAt === undefined || typeof i !== 'string' || !BUILD_ID.test(i)) throw new Error('bad cursor');
    return { createdAt, id: i };
  } catch {
    throw new ApiError(400, 'invalid_cursor', 'cursor must be the nextCursor of a previous page; send that value back unchanged, or leave cursor out to start from the first page', 'cursor');
  }
}
