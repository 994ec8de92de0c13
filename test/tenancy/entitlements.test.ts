/**
 * The entitlements `security.insecure` and `network.host` are never granted: the local executor's buildctl command
 * line carries no --allow, and neither do the builder images' build scripts (buildkitd there is started without
 * --allow-insecure-entitlement), so a Dockerfile that slipped past the request-time check still could not use them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildctlArguments } from '../../lib/executors/local/buildctl';

const ROOT = join(__dirname, '..', '..');

describe('entitlements', () => {
  it('are not asked for by the local executor', () => {
    const args = buildctlArguments(
      { buildId: 'b', consumer: 'c', contextKey: 'k', dockerfile: 'Dockerfile', repository: '127.0.0.1:5000/x', buildArgs: {}, labels: {}, platforms: ['linux/amd64'], engine: 'buildkit', timeoutSeconds: 60 },
      { buildkitHost: 'unix:///b.sock', contextDir: '/c', dockerfileDir: '/c', metadataFile: '/m.json', insecureRegistry: true },
    );
    expect(args.join(' ')).toContain('build');
    expect(args.filter((a) => a.startsWith('--allow') || a.includes('entitlement'))).toEqual([]);
  });

  it.each(['infra/images/image-builder/ibs-build', 'infra/images/qemu/ibs-build-in-vm', 'infra/images/image-builder/Dockerfile', 'infra/images/qemu/Dockerfile'])(
    'are not granted by %s',
    (file) => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      expect(text).not.toMatch(/--allow[ =]|allow-insecure-entitlement|security\.insecure|network\.host/);
    },
  );
});
