/**
 * The frontend check is only as good as its agreement with BuildKit on where a Dockerfile names a frontend: each
 * Dockerfile here goes to the real BuildKit daemon (dockerfile.v0, as the executors run it) naming a frontend image
 * that does not exist. Where BuildKit tries to load it (the build fails naming it), the policy's reader must find the
 * same image; where BuildKit builds the Dockerfile itself, the reader must find none.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDockerfile } from '../../lib/policy/dockerfile';
import { REGISTRY } from '../support/registry';

const run = promisify(execFile);
const FRONTEND = `${REGISTRY}/hostile/no-such-frontend:${Date.now()}`;

/** BuildKit's answer to the Dockerfile: built, or the error it failed with. */
async function buildkitOn(dir: string, dockerfile: string): Promise<{ built: true } | { built: false; error: string }> {
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  try {
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '',
      'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
    ]);
    return { built: true };
  } catch (err) {
    return { built: false, error: String((err as { stderr?: string }).stderr ?? err) };
  }
}

describe('where a Dockerfile names its frontend, BuildKit and the policy agree', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-tests-frontend-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each([
    ['a # syntax= directive', `# syntax=${FRONTEND}\nFROM scratch\n`],
    ['a # syntax= directive behind a #! line', `#!/usr/bin/env buildctl\n# syntax=${FRONTEND}\nFROM scratch\n`],
    ['a // syntax= directive', `// syntax=${FRONTEND}\nFROM scratch\n`],
    ['a JSON file', JSON.stringify({ syntax: FRONTEND })],
    ['a directive with arguments after the image', `# syntax=${FRONTEND} --opt=x\nFROM scratch\n`],
  ])('%s: BuildKit loads the frontend and the policy sees it', async (_name, dockerfile) => {
    const result = await buildkitOn(dir, dockerfile);
    expect(result.built).toBe(false);
    expect(!result.built && result.error).toContain(FRONTEND);
    expect(readDockerfile(dockerfile).frontend?.image).toBe(FRONTEND);
  });

  it.each([
    ['below a comment', `# a comment\n# syntax=${FRONTEND}\nFROM scratch\n`],
    ['below a directive BuildKit does not know', `# foo=bar\n# syntax=${FRONTEND}\nFROM scratch\n`],
    ['below an instruction', `FROM scratch\n# syntax=${FRONTEND}\n`],
  ])('a # syntax= line %s: BuildKit builds the Dockerfile itself and the policy sees no frontend', async (_name, dockerfile) => {
    expect(await buildkitOn(dir, dockerfile)).toEqual({ built: true });
    expect(readDockerfile(dockerfile).frontend).toBeUndefined();
  });
});
