/**
 * Storage trouble of a build log is reported through the process's telemetry as docs/operations.md says: one `warn`
 * line per outage with the build, the object and the bucket, one ibs_suppressed_errors_total count, and a line when
 * uploads work again; an error that quotes a signed URL or a credential is scrubbed. The store and the segment index
 * are in memory here; test/observability/log-durability.test.ts cuts the real MinIO under a whole build.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../storage/object-store';
import { createTelemetry, type Telemetry } from '../telemetry';
import { BuildLog, buildLogKey, type BuildLogSettings } from './build-log';
import { lastLineOf, type LogSegment, type LogSegmentIndex } from './segments';

const SIGNED_URL = 'https://minio.example:9000/ibs-logs/logs/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=0123456789abcdef';
const MINTED_TOKEN = 'minted-registry-token-4711';

/** A bucket in memory whose puts fail while `down` is set, with an error that quotes what a careless SDK might. */
function flakyStore(): ObjectStore & { down: boolean; objects: Map<string, Buffer> } {
  const objects = new Map<string, Buffer>();
  const store = {
    bucket: 'ibs-logs',
    down: false,
    objects,
    async put(key: string, body: Buffer | string | NodeJS.ReadableStream) {
      if (store.down) throw new Error(`connect ECONNREFUSED 127.0.0.1:1 while PUT ${SIGNED_URL} (Authorization: Bearer ${MINTED_TOKEN})`);
      const chunks: Buffer[] = [];
      if (typeof body === 'string' || Buffer.isBuffer(body)) chunks.push(Buffer.from(body));
      else for await (const chunk of body) chunks.push(chunk as Buffer);
      objects.set(key, Buffer.concat(chunks));
    },
    async get() {
      return undefined;
    },
  };
  return store as unknown as ObjectStore & { down: boolean; objects: Map<string, Buffer> };
}

/** The segment index (build_log_segments in PostgreSQL) in memory. */
function memoryIndex(): LogSegmentIndex {
  const segments: LogSegment[] = [];
  let compacted = 0;
  return {
    async record(segment: LogSegment) {
      const existing = segments.find((s) => s.seq === segment.seq);
      if (existing) return existing.key === segment.key ? 'recorded' : 'taken';
      segments.push(segment);
      return 'recorded';
    },
    async get(_buildId: string, seq: number) {
      return segments.find((s) => s.seq === seq);
    },
    async last() {
      return segments.at(-1);
    },
    async after(_buildId: string, line: number) {
      return segments.filter((s) => lastLineOf(s) > line);
    },
    async compactedLines() {
      return compacted;
    },
    async recordCompacted(_buildId: string, lines: number) {
      compacted = Math.max(compacted, lines);
    },
  } as unknown as LogSegmentIndex;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !condition(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a build log whose storage fails for a while', () => {
  let spoolDir: string;
  let telemetry: Telemetry;
  let lines: Record<string, unknown>[];
  let output: string;

  beforeEach(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'ibs-build-log-'));
    lines = [];
    output = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output += chunk.toString();
        for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
        callback();
      },
    });
    const config = { telemetry: { logLevel: 'info', metricsMaxConsumers: 100 }, secrets: [], build: { defaultEngine: 'buildkit' } };
    telemetry = createTelemetry(config as unknown as Parameters<typeof createTelemetry>[0], 'worker', { destination, processMetrics: false });
  });
  afterEach(async () => {
    await rm(spoolDir, { recursive: true, force: true });
  });

  const suppressed = async () => (await telemetry.metrics.suppressedErrors.get()).values.find((v) => v.labels.operation === 'build_log_upload')?.value ?? 0;

  it('logs and counts the outage once, with the build, object and bucket, scrubbed, and logs when uploads work again', async () => {
    const store = flakyStore();
    const settings: BuildLogSettings = { index: memoryIndex(), spoolDir, flushIntervalMs: 20, retryMaxMs: 50, telemetry };
    const buildId = randomUUID();
    const log = await BuildLog.open(store, settings, buildId, []);
    log.mask([MINTED_TOKEN]);

    store.down = true;
    log.write('line-1\n');
    // Several tries fail during the outage: still one line and one count.
    await new Promise((r) => setTimeout(r, 400));
    const failed = lines.filter((l) => l.msg === 'build log upload failed; retrying while the lines wait in the spool');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'warn', service: 'worker', operation: 'build_log_upload', buildId, bucket: 'ibs-logs', step: 'store a segment' });
    expect(failed[0]!.key).toMatch(new RegExp(`^logs/builds/${buildId}/segments/0000000000-[0-9a-f]+\\.log$`));
    expect((failed[0]!.err as { message: string }).message).toContain('ECONNREFUSED');
    expect(await suppressed()).toBe(1);
    // The error quoted a signed URL and a minted registry token: neither reaches the log.
    expect(output).toContain('<signed URL>');
    expect(output).not.toContain('X-Amz-Signature=0123456789abcdef');
    expect(output).not.toContain(MINTED_TOKEN);

    store.down = false;
    await until(() => lines.some((l) => l.msg === 'build log upload works again'), 'the recovery line');
    expect(lines.find((l) => l.msg === 'build log upload works again')).toMatchObject({ level: 'info', operation: 'build_log_upload', buildId, bucket: 'ibs-logs', key: failed[0]!.key });
    expect(await log.close()).toBe(true);
    expect(store.objects.get(buildLogKey(buildId))?.toString()).toBe('line-1\n');

    // A second outage is a new streak: logged and counted again.
    const second = await BuildLog.open(store, settings, buildId, []);
    store.down = true;
    second.write('line-2\n');
    await until(() => lines.filter((l) => l.msg === 'build log upload failed; retrying while the lines wait in the spool').length === 2, 'the second outage line');
    expect(await suppressed()).toBe(2);
    store.down = false;
    expect(await second.close()).toBe(true);
  });

  it('says where the lines wait when storage stays away past the close timeout', async () => {
    const store = flakyStore();
    const settings: BuildLogSettings = { index: memoryIndex(), spoolDir, flushIntervalMs: 20, retryMaxMs: 50, closeTimeoutMs: 300, telemetry };
    const buildId = randomUUID();
    const log = await BuildLog.open(store, settings, buildId, []);
    store.down = true;
    log.write('kept\n');
    expect(await log.close()).toBe(false);
    expect(lines.find((l) => l.msg === "the build's log is not fully stored; its spool keeps it for the next attempt")).toMatchObject({
      level: 'warn',
      operation: 'build_log_upload',
      buildId,
      bucket: 'ibs-logs',
      spool: join(spoolDir, buildId),
    });
    // One outage, one count: the close line ends the same streak.
    expect(await suppressed()).toBe(1);
  });
});
