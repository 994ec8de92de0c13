/**
 * The chart's API authentication and build policy settings: hashed static tokens become a Secret the API and the
 * worker mount and read through AUTH_TOKENS_FILE (proven by authenticating with the rendered file), a JWT issuer
 * defaults to this cluster's JWKS read with a projected token of the API's own service account, and the policy lists
 * reach the configuration.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BearerAuthenticator, knownConsumers } from '../../lib/auth/authenticator';
import { hashToken } from '../../lib/auth/static-tokens';
import { loadConfig } from '../../lib/config';
import { containerOf, find, plainEnv, RELEASE, renderChart, resolveEnv, secretData } from './render';
import { scratchDir } from '../support/scratch';

const FULLNAME = `${RELEASE}-build-service`;
const database = { POSTGRES_HOST: 'postgres', POSTGRES_USER: 'ibs', POSTGRES_PASSWORD: 'pg-password', POSTGRES_DB: 'ibs' };

function valuesFile(values: unknown): string {
  const file = join(scratchDir('ibs-auth-values-'), 'values.yaml');
  writeFileSync(file, stringify(values));
  return file;
}

describe('API authentication in the chart', () => {
  it('renders the hashed tokens into a Secret the API mounts and reads, and the tokens authenticate', async () => {
    const operatorToken = 'operator-token-kept-by-the-operator';
    const manifests = renderChart({
      valuesFiles: [valuesFile({ buildService: { auth: { tokens: [{ hash: `sha256:${hashToken(operatorToken)}`, principal: 'operator:platform' }] } } })],
    });
    const secret = secretData(find(manifests, 'Secret', `${FULLNAME}-api-tokens`));
    expect(secret.tokens).not.toContain(operatorToken);
    const { container, pod } = containerOf(manifests, `${FULLNAME}-api`);
    const env = plainEnv(resolveEnv(manifests, container));
    expect(env.AUTH_TOKENS_FILE).toBe('/etc/image-build-service/auth/tokens');
    expect((container as unknown as { volumeMounts: { name: string; mountPath: string }[] }).volumeMounts).toContainEqual(expect.objectContaining({ name: 'api-tokens', mountPath: '/etc/image-build-service/auth' }));
    expect((pod.volumes as { name: string; secret?: { secretName: string } }[]).find((v) => v.name === 'api-tokens')?.secret?.secretName).toBe(`${FULLNAME}-api-tokens`);
    // The worker mounts the same file: the consumers it names are whose images a build must not read, checked again
    // before each attempt (activities/policy.ts).
    const worker = containerOf(manifests, `${FULLNAME}-worker`);
    expect(plainEnv(resolveEnv(manifests, worker.container)).AUTH_TOKENS_FILE).toBe('/etc/image-build-service/auth/tokens');
    expect((worker.container as unknown as { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }).volumeMounts).toContainEqual({ name: 'api-tokens', mountPath: '/etc/image-build-service/auth', readOnly: true });
    expect((worker.pod.volumes as { name: string; secret?: { secretName: string } }[]).find((v) => v.name === 'api-tokens')?.secret?.secretName).toBe(`${FULLNAME}-api-tokens`);

    // What the API does with it: the file as the kubelet would mount it, read through the configuration.
    const mounted = join(scratchDir('ibs-auth-mount-'), 'tokens');
    writeFileSync(mounted, secret.tokens!);
    const config = loadConfig({ ...database, ...env, AUTH_TOKENS_FILE: mounted });
    await expect(new BearerAuthenticator(config.auth).authenticate(`Bearer ${operatorToken}`)).resolves.toEqual({ consumer: 'platform', role: 'operator' });
    await expect(new BearerAuthenticator(config.auth).authenticate('Bearer another')).rejects.toMatchObject({ code: 'invalid_token' });
    expect(knownConsumers(config.auth)()).toEqual(new Set(['platform']));
  });

  it('refuses a token written in clear instead of its hash', () => {
    expect(() => renderChart({ valuesFiles: [valuesFile({ buildService: { auth: { tokens: [{ hash: 'my-secret-token', principal: 'consumer:apps' }] } } })] })).toThrow(/hash must be sha256:/);
  });

  it('mounts an existing Secret instead, and renders none of its own', () => {
    const manifests = renderChart({ set: ['buildService.auth.existingSecret=platform-api-tokens'] });
    expect(manifests.find((m) => m.kind === 'Secret' && m.metadata.name === `${FULLNAME}-api-tokens`)).toBeUndefined();
    const { pod } = containerOf(manifests, `${FULLNAME}-api`);
    expect((pod.volumes as { name: string; secret?: { secretName: string } }[]).find((v) => v.name === 'api-tokens')?.secret?.secretName).toBe('platform-api-tokens');
  });

  it('points a JWT issuer at this cluster\'s JWKS, read with the CA and a projected token of the API\'s own service account', () => {
    const manifests = renderChart({
      valuesFiles: [valuesFile({ buildService: { auth: { jwt: { issuer: 'https://kubernetes.default.svc', audiences: ['image-build-service'], subjects: { 'system:serviceaccount:apps:custom-models': 'consumer:custom-models' } } } } })],
    });
    const { container, pod } = containerOf(manifests, `${FULLNAME}-api`);
    const env = plainEnv(resolveEnv(manifests, container));
    const config = loadConfig({ ...database, ...env });
    const dir = '/var/run/secrets/image-build-service/jwks-reader';
    expect(config.auth.jwt).toEqual({
      issuer: 'https://kubernetes.default.svc',
      jwksUrl: 'https://kubernetes.default.svc/openid/v1/jwks',
      audiences: ['image-build-service'],
      caFile: `${dir}/ca.crt`,
      jwksTokenFile: `${dir}/token`,
      subjects: { 'system:serviceaccount:apps:custom-models': { consumer: 'custom-models', role: 'consumer' } },
    });
    expect(config.auth.tokensFile).toBeUndefined();
    // Not the automounted credentials (none are): a token of the API's account, which no Role binds, for the API
    // server's own audience (what /openid/v1/jwks accepts), and the cluster's CA, where the configuration reads them.
    expect(pod).toMatchObject({ serviceAccountName: `${FULLNAME}-api`, automountServiceAccountToken: false });
    expect((container as unknown as { volumeMounts: unknown[] }).volumeMounts).toContainEqual({ name: 'jwks-reader', mountPath: dir, readOnly: true });
    expect((pod.volumes as { name: string }[]).find((v) => v.name === 'jwks-reader')).toMatchObject({
      name: 'jwks-reader',
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3600 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    });
    expect(JSON.stringify(containerOf(manifests, `${FULLNAME}-worker`).pod.volumes)).not.toContain('jwks-reader');
  });

  it('projects no token into the API for a JWKS elsewhere, or without JWTs', () => {
    for (const jwt of [{ issuer: 'https://issuer.example', jwksUrl: 'https://issuer.example/jwks' }, {}]) {
      const manifests = renderChart({ valuesFiles: [valuesFile({ buildService: { auth: { jwt } } })] });
      const { container, pod } = containerOf(manifests, `${FULLNAME}-api`);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(JSON.stringify(pod.volumes)).not.toContain('serviceAccountToken');
      expect(plainEnv(resolveEnv(manifests, container))).not.toHaveProperty('AUTH_JWT_JWKS_TOKEN_FILE');
    }
  });

  it('hands the policy lists to the service', () => {
    const manifests = renderChart({
      valuesFiles: [valuesFile({ buildService: { policy: {
        trustedConsumers: ['environments'],
        allowedFrontends: ['docker.io/docker/dockerfile:*'],
        targetRegistries: ['registry.example.com', '*.internal.example'],
        targetRepositories: ['registry.example.com/{consumer}/*'],
      } } })],
    });
    // The API checks them at request time and the worker before a build: both get them.
    for (const deployment of ['worker', 'api']) {
      const config = loadConfig({ ...database, ...plainEnv(resolveEnv(manifests, containerOf(manifests, `${FULLNAME}-${deployment}`).container)) });
      expect(config.policy, deployment).toMatchObject({
        trustedConsumers: ['environments'],
        allowedFrontends: ['docker.io/docker/dockerfile:*'],
        targetRegistries: ['registry.example.com', '*.internal.example'],
        targetRepositories: ['registry.example.com/{consumer}/*'],
      });
    }
  });
});
