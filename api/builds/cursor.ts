/** The opaque cursor of the paged list: the last row's created_at and id, so a page never repeats or skips a build. */
import { ApiError } from '../errors';

// Build ids are UUIDs; anything else would reach PostgreSQL's uuid comparison and fail there.
const BUILD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface BuildPosition {
  createdAt: Date;
  id: string;
}

export function encodeCursor(position: BuildPosition): string {
  return Buffer.from(JSON.stringify({ t: position.createdAt.toISOString(), i: position.id })).toString('base64url');
}

export function decodeCursor(cursor: string): BuildPosition {
  try {
    const { t, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { t: unknown; i: unknown };
    const createdAt = new Date(typeof t === 'string' ? t : Number.NaN);
    if (Number.isNaN(createdAt.getTime()) || typeof i !== 'string' || !BUILD_ID.test(i)) throw new Error('bad cursor');
    return { createdAt, id: i };
  } catch {
    throw new ApiError(400, 'invalid_cursor', 'cursor must be the nextCursor of a previous page; send that value back unchanged, or leave cursor out to start from the first page', 'cursor');
  }
}
