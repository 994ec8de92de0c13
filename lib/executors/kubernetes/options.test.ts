import { describe, expect, it } from 'vitest';
import { DEFAULT_KANIKO_SECURITY_CONTEXT, defaultImageBuilderSecurityContext, resolveKubernetesOptions } from './options';

const minimal = { namespace: 'builds', imageBuilder: { repository: 'registry.example/datarobot/', version: '11.7.0' } };

describe('resolveKubernetesOptions', () => {
  it('fills the documented defaults', () => {
    const o = resolveKubernetesOptions(minimal);
    expect(o.imageBuilder).toMatchObject({
      repository: 'registry.example/datarobot',
      name: 'image-builder',
      engine: 'buildkit',
      useQemu: false,
      resources: { requests: { cpu: '1', memory: '1G', ephemeralStorage: '1G' }, limits: { cpu: '1', memory: '1G', ephemeralStorage: '100G' } },
      kaniko: { containerSecurityContext: DEFAULT_KANIKO_SECURITY_CONTEXT, userNamespaceIsolation: true },
      otlp: { enabled: false },
    });
    expect(o.imageBuilder.securityContext).toBeUndefined();
    expect(o.pullCredentials).toEqual({ mountImagePullSecrets: true, imagePullSecrets: [], credentialsSecrets: [], secretsToMount: [], plain: [], wildcardRegistryHosts: [] });
    expect(o.retentionSeconds).toBe(300);
  });

  it('replaces a Kaniko capability list whole and keeps the other defaults', () => {
    const o = resolveKubernetesOptions({ ...minimal, imageBuilder: { ...minimal.imageBuilder, kaniko: { containerSecurityContext: { capabilities: { drop: ['ALL'], add: ['CHOWN'] }, seccompProfileType: 'RuntimeDefault' } } } });
    expect(o.imageBuilder.kaniko.containerSecurityContext).toEqual({ ...DEFAULT_KANIKO_SECURITY_CONTEXT, capabilities: { drop: ['ALL'], add: ['CHOWN'] }, seccompProfileType: 'RuntimeDefault' });
  });

  it('keeps a single resource override beside the other defaults', () => {
    const o = resolveKubernetesOptions({ ...minimal, imageBuilder: { ...minimal.imageBuilder, resources: { limits: { memory: '8G' } } } });
    expect(o.imageBuilder.resources.limits).toEqual({ cpu: '1', memory: '8G', ephemeralStorage: '100G' });
  });
});

describe('defaultImageBuilderSecurityContext', () => {
  it('is what rootless BuildKit needs, and what Pod Security "restricted" admits in QEMU mode', () => {
    expect(defaultImageBuilderSecurityContext(false)).toEqual({ allowPrivilegeEscalation: true, seccompProfileType: 'Unconfined', seLinuxType: '', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] } });
    expect(defaultImageBuilderSecurityContext(true)).toEqual({ allowPrivilegeEscalation: false, seccompProfileType: 'RuntimeDefault', seLinuxType: '', capabilities: { drop: ['ALL'], add: [] } });
  });
});
