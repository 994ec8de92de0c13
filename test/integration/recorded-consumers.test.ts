/**
 * The consumers with recorded builds (BuildRepository.consumers) against the real PostgreSQL of the local stack, and
 * the image owner check that reads them (ImageOwners): a consumer an operator builds for with X-Consumer holds no
 * token, and its repositories are guarded once it has a build.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildRepository } from '../../lib/db/builds-repository';
import { createPool, migrate } from '../../lib/db/pool';
import { ImageOwners } from '../../lib/policy/targets';
import { testConfig } from '../support/stack';

describe('the consumers with recorded builds', () => {
  let pool: Pool;
  let builds: BuildRepository;
  const made: string[] = [];
  beforeAll(async () => {
    pool = createPool(testConfig().postgres);
    await migrate(pool);
    builds = new BuildRepository(pool);
  });
  afterAll(async () => {
    await pool?.query('DELETE FROM builds WHERE id = ANY($1::uuid[])', [made]);
    await pool?.end();
  });

  async function recordBuild(consumer: string): Promise<void> {
    const id = randomUUID();
    made.push(id);
    const image = `registry.test/${consumer}/app:1`;
    await builds.create({ id, consumer, image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: [] }, contextKey: 'k', contextDigest: 'sha256:0' });
  }

  it('lists each consumer once', async () => {
    const run = randomUUID().slice(0, 8);
    await recordBuild(`tenant-${run}-a`);
    await recordBuild(`tenant-${run}-a`);
    await recordBuild(`tenant-${run}-b`);
    const listed = await builds.consumers();
    expect(listed.filter((c) => c.includes(run))).toEqual([`tenant-${run}-a`, `tenant-${run}-b`]);
    // Other suites add and delete builds meanwhile, so only the shape of the whole list is compared: no name twice.
    expect(new Set(listed).size).toBe(listed.length);
  });

  it("guards the repositories of a consumer known only from its builds, read again once 5 s have passed", async () => {
    const run = randomUUID().slice(0, 8);
    let now = 0;
    const owners = new ImageOwners({ repositories: ['registry.test/{consumer}/*'] }, { named: () => ['team'], recorded: () => builds.consumers() }, () => now);
    const judge = async (image: string) => {
      try {
        (await owners.check())({ image, where: 'FROM', field: 'dockerfile' }, 'team');
        return 'allowed';
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    const theirs = `registry.test/tenant-${run}/private:1`;
    expect(await judge(theirs)).toBe('allowed');
    await recordBuild(`tenant-${run}`);
    // Read at most every 5 s: a consumer's first build pushes its first image later than that.
    now += 4_999;
    expect(await judge(theirs)).toBe('allowed');
    now += 1;
    expect(await judge(theirs)).toBe('image_of_another_consumer');
    expect(await judge(`registry.test/team/app:1`)).toBe('allowed');
  });
});
