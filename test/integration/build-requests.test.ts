/**
 * Hostile and malformed build requests against the real API, PostgreSQL and MinIO: each gets a 400 with a stable
 * code that names the problem, and nothing is stored (no context object, no build row, no workflow).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf, tarGzOf, tarOf, type Entry } from '../support/archives';
import { listKeys } from '../support/object-keys';
import { startTestStack, type TestStack } from '../support/stack';

const DOCKERFILE: Entry = { name: 'Dockerfile', body: 'FROM scratch\n' };
const SPEC = { image: '127.0.0.1:5000/rejections/app:1' };

describe('rejected build requests', () => {
  let stack: TestStack;
  let s3: S3Client;

  // Every page: one listing stops at 1000 keys, and a count that stays at 1000 would prove nothing.
  const storedContexts = async (): Promise<number> => (await listKeys(s3, process.env.LOGS_BUCKET ?? 'data', 'contexts/')).length;
  const buildRows = async (): Promise<number> => Number((await stack.pool.query('SELECT count(*) FROM builds')).rows[0].count);

  async function expectRejected(body: FormData | string, code: string, field?: string, headers: Record<string, string> = {}) {
    const [contextsBefore, rowsBefore] = [await storedContexts(), await buildRows()];
    const res = await stack.api(`/v1/builds`, { method: 'POST', body, headers });
    const json = (await res.json()) as { error: { code: string; message: string; field?: string } };
    expect(res.status, JSON.stringify(json)).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(10);
    if (field) expect(json.error.field).toBe(field);
    expect(await storedContexts()).toBe(contextsBefore);
    expect(await buildRows()).toBe(rowsBefore);
    return json.error;
  }

  beforeAll(async () => {
    // Small limits so the limit cases stay small and fast.
    stack = await startTestStack('rejections', {
      CONTEXT_MAX_ARCHIVE_BYTES: String(4 * 1024 * 1024),
      CONTEXT_MAX_UNCOMPRESSED_BYTES: String(8 * 1024 * 1024),
      CONTEXT_MAX_ENTRIES: '50',
      CONTEXT_MAX_COMPRESSION_RATIO: '50',
    });
    // Listing is not part of the ObjectStore port, so the test asks MinIO directly.
    s3 = new S3Client({
      endpoint: process.env.MINIO_SERVER_HOST,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
    });
  });
  afterAll(() => stack?.close());

  describe('archive entries', () => {
    it.each<[string, Entry[], string]>([
      ['an absolute path', [DOCKERFILE, { name: '/etc/passwd', body: 'x' }], 'context_absolute_path'],
      ['a path climbing with ..', [DOCKERFILE, { name: 'a/../../escape', body: 'x' }], 'context_path_traversal'],
      ['a symlink pointing outside the context', [DOCKERFILE, { name: 'a/link', type: 'symlink', linkname: '../../outside' }], 'context_link_escape'],
      ['an entry written through a symlink', [DOCKERFILE, { name: 'dir', type: 'symlink', linkname: '/' }, { name: 'dir/etc/x', body: 'x' }], 'context_path_through_link'],
      ['a hard link to a missing file', [DOCKERFILE, { name: 'hard', type: 'link', linkname: 'nope' }], 'context_hardlink_invalid'],
      ['a character device', [DOCKERFILE, { name: 'dev-null', type: 'character-device', devmajor: 1, devminor: 3 }], 'context_special_file'],
      ['a block device', [DOCKERFILE, { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }], 'context_special_file'],
      ['a FIFO', [DOCKERFILE, { name: 'pipe', type: 'fifo' }], 'context_special_file'],
    ])('refuses %s', async (_case, entries, code) => {
      const error = await expectRejected(buildForm(SPEC, await tarGzOf(entries)), code, 'context');
      expect(error.message).toMatch(/context/i);
    });

    it('accepts an absolute symlink, which counts from the context root (vendored virtualenvs)', async () => {
      const context = await tarGzOf([DOCKERFILE, { name: 'venv/bin/python', type: 'symlink', linkname: '/usr/bin/python3' }]);
      const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image: '127.0.0.1:5000/rejections/venv:1' }, context) });
      expect(res.status).toBe(202);
      // No worker polls this suite's queue, so cancel to keep the workflow from waiting forever.
      const { id } = (await res.json()) as { id: string };
      expect((await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' })).status).toBe(202);
    });
  });

  describe('archive limits', () => {
    it('refuses more entries than CONTEXT_MAX_ENTRIES', async () => {
      const entries = Array.from({ length: 60 }, (_, i) => ({ name: `f${i}`, body: 'x' }));
      await expectRejected(buildForm(SPEC, await tarGzOf([DOCKERFILE, ...entries])), 'context_too_many_entries', 'context');
    });

    it('refuses an upload over CONTEXT_MAX_ARCHIVE_BYTES', async () => {
      const noise = Buffer.alloc(5 * 1024 * 1024);
      for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
      await expectRejected(buildForm(SPEC, await tarOf([DOCKERFILE, { name: 'big.bin', body: noise }]), 'ctx.tar'), 'context_too_large', 'context');
    });

    it('refuses uncompressed contents over CONTEXT_MAX_UNCOMPRESSED_BYTES', async () => {
      // Random letters of a four-letter alphabet compress about 4:1: under the ratio limit, over the size limit.
      const letters = Buffer.from(Array.from(randomBytes(9 * 1024 * 1024), (b) => 'ACGT'.charCodeAt(b & 3)));
      const archive = await tarGzOf([DOCKERFILE, { name: 'genome.txt', body: letters }]);
      expect(archive.length).toBeLessThan(4 * 1024 * 1024);
      await expectRejected(buildForm(SPEC, archive), 'context_too_large', 'context');
    });

    it('refuses a gzip bomb by its compression ratio', async () => {
      const bomb = gzipSync(await tarOf([DOCKERFILE, { name: 'zeros', body: Buffer.alloc(6 * 1024 * 1024) }]));
      await expectRejected(buildForm(SPEC, bomb), 'context_compression_ratio_exceeded', 'context');
    });

    it('refuses something that is not a tar archive', async () => {
      await expectRejected(buildForm(SPEC, Buffer.from('this is not an archive at all, just text'.repeat(20))), 'context_invalid_archive', 'context');
    });

    it('refuses a truncated tar.gz', async () => {
      const archive = await contextOf({ Dockerfile: 'FROM scratch\n', 'a.txt': 'a'.repeat(100_000) });
      await expectRejected(buildForm(SPEC, archive.subarray(0, archive.length - 200)), 'context_invalid_archive', 'context');
    });
  });

  describe('the spec', () => {
    const context = () => contextOf({ Dockerfile: 'FROM scratch\n', 'sub/Dockerfile': 'FROM scratch\n' });

    it.each<[string, unknown, string, string]>([
      ['an unknown field', { ...SPEC, imagee: 'x' }, 'invalid_spec', 'imagee'],
      ['a missing image', { dockerfile: 'Dockerfile' }, 'invalid_spec', 'image'],
      ['an image without a registry host', { image: 'app:1' }, 'invalid_spec', 'image'],
      ['an image with an invalid tag', { image: '127.0.0.1:5000/app:-x' }, 'invalid_spec', 'image'],
      ['an image with upper-case repository', { image: '127.0.0.1:5000/App:1' }, 'invalid_spec', 'image'],
      ['a dockerfile path climbing out', { ...SPEC, dockerfile: '../Dockerfile' }, 'invalid_spec', 'dockerfile'],
      ['a dockerfile that is not in the context', { ...SPEC, dockerfile: 'docker/Dockerfile' }, 'dockerfile_not_found', 'dockerfile'],
      ['a build argument with a bad name', { ...SPEC, buildArgs: { 'BAD-NAME': 'x' } }, 'invalid_spec', 'buildArgs.BAD-NAME'],
      ['a bad platform', { ...SPEC, platforms: ['amd64'] }, 'invalid_spec', 'platforms.0'],
      ['an unknown engine', { ...SPEC, engine: 'docker' }, 'invalid_spec', 'engine'],
      ['a spec that is not JSON', '{"image": ', 'invalid_spec', 'spec'],
    ])('refuses %s', async (_case, spec, code, field) => {
      const error = await expectRejected(buildForm(spec, await context()), code, field);
      if (code === 'invalid_spec' && field !== 'spec') expect(error.message).toContain(`spec.${field.split('.')[0]}`);
    });

    it('refuses a request without a context part', async () => {
      const form = new FormData();
      form.append('spec', JSON.stringify(SPEC));
      await expectRejected(form, 'context_part_missing', 'context');
    });

    it('refuses a request without a spec part', async () => {
      const form = new FormData();
      form.append('context', new Blob([await context()]), 'ctx.tar.gz');
      await expectRejected(form, 'spec_missing', 'spec');
    });

    it('refuses a body that is neither multipart nor JSON', async () => {
      await expectRejected(JSON.stringify(SPEC), 'unsupported_media_type', undefined, { 'content-type': 'text/plain' });
    });

    it('refuses a JSON spec that names no source', async () => {
      await expectRejected(JSON.stringify(SPEC), 'source_conflict', 'spec', { 'content-type': 'application/json' });
    });

    it('refuses a bad X-Consumer header', async () => {
      await expectRejected(buildForm(SPEC, await context()), 'invalid_consumer', 'X-Consumer', { 'x-consumer': '../../etc' });
    });
  });

  it('answers unknown builds and malformed ids with stable codes', async () => {
    const missing = await stack.api(`/v1/builds/3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('build_not_found');
    const malformed = await stack.api(`/v1/builds/not-a-uuid`);
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('invalid_build_id');
  });
});
