import { describe, expect, it } from 'vitest';
import { assertKanikoCompatible, findSecretMounts } from './dockerfile-checks';

describe('findSecretMounts', () => {
  it('finds RUN --mount=type=secret, also on continued lines and among other mount options', () => {
    const dockerfile = [
      'FROM busybox',
      'RUN --mount=type=secret,id=npm cat /run/secrets/npm',
      'RUN echo ok',
      'RUN --mount=type=cache,target=/c \\',
      '    --mount=id=tok,type=secret \\',
      '    true',
      'run --mount=type=secret,id=x true',
    ].join('\n');
    expect(findSecretMounts(dockerfile)).toEqual([2, 4, 7]);
  });

  it('ignores other mounts and comments', () => {
    expect(findSecretMounts('FROM a\nRUN --mount=type=cache,target=/x true\n# RUN --mount=type=secret\nCOPY . .\n')).toEqual([]);
  });
});

describe('assertKanikoCompatible', () => {
  it('refuses a secret mount with a stable code and the line', () => {
    expect(() => assertKanikoCompatible('FROM a\nRUN --mount=type=secret,id=t true', 'docker/Dockerfile')).toThrow(
      expect.objectContaining({ code: 'kaniko_secret_mount_unsupported', message: expect.stringContaining('docker/Dockerfile uses RUN --mount=type=secret (line 2)') }),
    );
  });

  it('accepts a Dockerfile without one', () => {
    expect(() => assertKanikoCompatible('FROM a\nRUN true', 'Dockerfile')).not.toThrow();
  });
});
