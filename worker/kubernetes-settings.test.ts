import { describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config';
import { defaultImageBuilderSecurityContext, resolveKubernetesOptions } from '../lib/executors/kubernetes';
import { kubernetesSettingsFrom } from './kubernetes-settings';

const env = {
  POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'p', POSTGRES_DB: 'd',
  BUILD_EXECUTOR: 'kubernetes', IMAGE_BUILDER_REPOSITORY: 'registry.example/datarobot', IMAGE_BUILDER_VERSION: '11.7.0',
};

describe('kubernetesSettingsFrom', () => {
  // The executor once had its own copies of these defaults, and its pod retention (0) differed from the configuration's (300).
  it('gives the executor the same defaults whether it is configured from the environment or from settings left out', () => {
    const fromEnvironment = resolveKubernetesOptions(kubernetesSettingsFrom(loadConfig(env)));
    const fromDefaults = resolveKubernetesOptions({ namespace: 'default', imageBuilder: { repository: env.IMAGE_BUILDER_REPOSITORY, version: env.IMAGE_BUILDER_VERSION } });
    expect(fromEnvironment.retentionSeconds).toBe(fromDefaults.retentionSeconds);
    const { securityContext, ...imageBuilder } = fromEnvironment.imageBuilder;
    // Left out, the builder's security context is chosen per pod from its mode; the configuration's default is that choice for the configured mode.
    expect(securityContext).toEqual(defaultImageBuilderSecurityContext(false));
    expect(imageBuilder).toEqual({ ...fromDefaults.imageBuilder, securityContext: undefined, maxResources: {}, buildkitSnapshotter: 'native', kaniko: { ...fromDefaults.imageBuilder.kaniko, image: 'registry.example/datarobot/image-builder:11.7.0-kaniko-image' } });
    expect(fromEnvironment.pullCredentials).toEqual(fromDefaults.pullCredentials);
  });

  it('passes an operator\'s values through', () => {
    const settings = kubernetesSettingsFrom(loadConfig({ ...env, IMAGE_BUILDER_POD_RETENTION_SECONDS: '0', IMAGE_BUILDER_MAX_RESOURCES_MEMORY: '16Gi', KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_USER: '1000' }));
    expect(settings.retentionSeconds).toBe(0);
    expect(settings.imageBuilder.maxResources).toEqual({ memory: '16Gi' });
    expect(settings.imageBuilder.kaniko?.containerSecurityContext?.runAsUser).toBe(1000);
  });

  it('refuses a configuration without the builder image', () => {
    expect(() => kubernetesSettingsFrom(loadConfig({ ...env, IMAGE_BUILDER_VERSION: '' }))).toThrow(/IMAGE_BUILDER_REPOSITORY and IMAGE_BUILDER_VERSION/);
  });
});
