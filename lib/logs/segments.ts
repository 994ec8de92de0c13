/**
 * The build log as it is stored while the build runs: append-only numbered segments in object storage, each a run
 * of whole lines, never rewritten. PostgreSQL indexes them (table build_log_segments: which lines each holds and
 * under which key) and announces each new one on the NOTIFY channel `ibs_build_log`, so the API's shared tail of a
 * build learns of it at once instead of polling. Lines are numbered from 1 across all attempts of a build; the
 * number of the last line a reader got is what `?follow=true` uses as the SSE event id.
 */
import type { Pool, QueryResultRow } from 'pg';

export const BUILD_LOG_CHANNEL = 'ibs_build_log';

export interface LogSegment {
  buildId: string;
  seq: number;
  /** Number of the segment's first line (1-based, across attempts). */
  firstLine: number;
  lineCount: number;
  byteCount: number;
  key: string;
}

/** The last line number a segment holds. */
export function lastLineOf(segment: Pick<LogSegment, 'firstLine' | 'lineCount'>): number {
  return segment.firstLine + segment.lineCount - 1;
}

/** The whole log of a build, written when an attempt ends (the first `log_compacted_lines` lines of it count). */
export function buildLogKey(buildId: string): string {
  return `logs/builds/${buildId}/build.log`;
}

/** `writer` tells apart two workers that ever wrote the same build at once: neither overwrites the other's object. */
export function segmentKey(buildId: string, seq: number, writer: string): string {
  return `logs/builds/${buildId}/segments/${String(seq).padStart(10, '0')}-${writer}.log`;
}

interface SegmentRow {
  build_id: string;
  seq: number;
  first_line: string;
  line_count: number;
  byte_count: number;
  object_key: string;
}

function toSegment(row: SegmentRow): LogSegment {
  return {
    buildId: row.build_id,
    seq: row.seq,
    firstLine: Number(row.first_line),
    lineCount: row.line_count,
    byteCount: row.byte_count,
    key: row.object_key,
  };
}

/** The notification payload: the segment itself, so a listener needs no query to fetch it. */
export function parseSegmentNotification(payload: string | undefined): LogSegment | undefined {
  if (!payload) return undefined;
  try {
    const value = JSON.parse(payload) as Partial<SegmentRow>;
    if (typeof value.build_id !== 'string' || typeof value.seq !== 'number' || typeof value.object_key !== 'string') return undefined;
    return toSegment(value as SegmentRow);
  } catch {
    return undefined;
  }
}

export class LogSegmentIndex {
  constructor(private readonly pool: Pool) {}

  /**
   * Records a stored segment and announces it. Returns 'recorded', or 'taken' when that number already belongs to
   * another object (another writer got there first: the caller renumbers). Recording the same segment twice (a
   * retried call, a recovered spool) is 'recorded'.
   */
  async record(segment: LogSegment): Promise<'recorded' | 'taken'> {
    const { rows } = await this.query<{ object_key: string }>(
      `WITH ins AS (
         INSERT INTO build_log_segments (build_id, seq, first_line, line_count, byte_count, object_key)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (build_id, seq) DO NOTHING
         RETURNING build_id, seq, first_line, line_count, byte_count, object_key)
       SELECT object_key, pg_notify($7, row_to_json(ins)::text) FROM ins`,
      [segment.buildId, segment.seq, segment.firstLine, segment.lineCount, segment.byteCount, segment.key, BUILD_LOG_CHANNEL],
    );
    if (rows.length > 0) return 'recorded';
    const existing = await this.get(segment.buildId, segment.seq);
    return existing?.key === segment.key ? 'recorded' : 'taken';
  }

  async get(buildId: string, seq: number): Promise<LogSegment | undefined> {
    const { rows } = await this.query<SegmentRow>('SELECT * FROM build_log_segments WHERE build_id = $1 AND seq = $2', [buildId, seq]);
    return rows[0] ? toSegment(rows[0]) : undefined;
  }

  async last(buildId: string): Promise<LogSegment | undefined> {
    const { rows } = await this.query<SegmentRow>(
      'SELECT * FROM build_log_segments WHERE build_id = $1 ORDER BY seq DESC LIMIT 1',
      [buildId],
    );
    return rows[0] ? toSegment(rows[0]) : undefined;
  }

  /** The segments holding lines after `line`, in order; at most `limit` of them. */
  async after(buildId: string, line: number, limit = 1000): Promise<LogSegment[]> {
    const { rows } = await this.query<SegmentRow>(
      `SELECT * FROM build_log_segments WHERE build_id = $1 AND first_line + line_count - 1 > $2
       ORDER BY seq LIMIT $3`,
      [buildId, line, limit],
    );
    return rows.map(toSegment);
  }

  /** How many leading lines of the whole-log object (buildLogKey) are current. */
  async compactedLines(buildId: string): Promise<number> {
    const { rows } = await this.query<{ log_compacted_lines: string }>('SELECT log_compacted_lines FROM builds WHERE id = $1', [buildId]);
    return rows[0] ? Number(rows[0].log_compacted_lines) : 0;
  }

  async recordCompacted(buildId: string, lines: number): Promise<void> {
    await this.query('UPDATE builds SET log_compacted_lines = $2 WHERE id = $1 AND log_compacted_lines < $2', [buildId, lines]);
  }

  /** One query for a build's shared tail: its status and its newest segment number. */
  async progress(buildId: string): Promise<{ status: string; lastSeq: number } | undefined> {
    const { rows } = await this.query<{ status: string; last_seq: number | null }>(
      `SELECT status, (SELECT max(seq) FROM build_log_segments WHERE build_id = $1) AS last_seq FROM builds WHERE id = $1`,
      [buildId],
    );
    return rows[0] ? { status: rows[0].status, lastSeq: rows[0].last_seq ?? -1 } : undefined;
  }

  private query<R extends QueryResultRow>(text: string, values: unknown[]): Promise<{ rows: R[] }> {
    return this.pool.query<R>(text, values);
  }
}
