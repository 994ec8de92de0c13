import { describe, expect, it } from 'vitest';
import { BuildFailedError } from '../executor';
import {
  credentialValuesOf, encodeDockerConfig, expandWildcardRegistryHosts, mergeDockerConfigs, parseDockerConfigSecret, plainCredentialsConfig, pullSecretNamesToMerge,
} from './pull-secrets';

const auth = (user: string) => ({ auth: Buffer.from(`${user}:pw`).toString('base64') });

describe('expandWildcardRegistryHosts', () => {
  it('copies a *.domain entry to every listed exact host under that domain', () => {
    const out = expandWildcardRegistryHosts({ auths: { '*.myregistry.com': auth('wild') } }, ['repo1.myregistry.com', 'repo2.myregistry.com']);
    expect(out.auths['repo1.myregistry.com']).toEqual(auth('wild'));
    expect(out.auths['repo2.myregistry.com']).toEqual(auth('wild'));
    expect(out.auths['*.myregistry.com']).toEqual(auth('wild'));
  });

  it('leaves hosts outside the domain, and the bare domain itself, alone', () => {
    const out = expandWildcardRegistryHosts({ auths: { '*.myregistry.com': auth('wild') } }, ['other.example', 'myregistry.com', 'evilmyregistry.com']);
    expect(Object.keys(out.auths)).toEqual(['*.myregistry.com']);
  });

  it('keeps an exact entry over the wildcard and prefers the most specific wildcard', () => {
    const out = expandWildcardRegistryHosts(
      { auths: { '*.myregistry.com': auth('wild'), '*.eu.myregistry.com': auth('eu'), 'repo1.myregistry.com': auth('exact') } },
      ['repo1.myregistry.com', 'a.eu.myregistry.com', ' REPO3.myregistry.com '],
    );
    expect(out.auths['repo1.myregistry.com']).toEqual(auth('exact'));
    expect(out.auths['a.eu.myregistry.com']).toEqual(auth('eu'));
    expect(out.auths['repo3.myregistry.com']).toEqual(auth('wild'));
  });
});

describe('pull secret merging', () => {
  it('reads the global secrets only when imagePullSecrets.mount is on, then the builder secrets, without duplicates', () => {
    const base = { imagePullSecrets: ['global'], credentialsSecrets: ['chart-made', 'global'], secretsToMount: ['wild'], plain: [], wildcardRegistryHosts: [] };
    expect(pullSecretNamesToMerge({ ...base, mountImagePullSecrets: true })).toEqual(['global', 'chart-made', 'wild']);
    expect(pullSecretNamesToMerge({ ...base, mountImagePullSecrets: false })).toEqual(['chart-made', 'global', 'wild']);
    expect(pullSecretNamesToMerge({ ...base, imagePullSecrets: ['only-global'], credentialsSecrets: [], mountImagePullSecrets: false })).toEqual(['wild']);
  });

  it('lets later sources win for the same host', () => {
    const merged = mergeDockerConfigs([{ auths: { 'docker.io': auth('a'), 'q.io': auth('q') } }, plainCredentialsConfig([{ host: 'docker.io', user: 'b', password: 'pw' }])]);
    expect(merged.auths).toEqual({ 'docker.io': auth('b'), 'q.io': auth('q') });
  });

  it('parses a dockerconfigjson secret and round-trips the encoding', () => {
    const data = { '.dockerconfigjson': encodeDockerConfig({ auths: { 'r.example': auth('u') } }) };
    expect(parseDockerConfigSecret('s', data)).toEqual({ auths: { 'r.example': auth('u') } });
  });

  it('refuses a secret that is not a docker config, naming the secret but not its content', () => {
    const bad = { '.dockerconfigjson': Buffer.from('not json: hunter2').toString('base64') };
    expect(() => parseDockerConfigSecret('mine', bad)).toThrow(BuildFailedError);
    try {
      parseDockerConfigSecret('mine', bad);
    } catch (err) {
      expect((err as BuildFailedError).code).toBe('pull_secret_invalid');
      expect((err as Error).message).toContain('"mine"');
      expect((err as Error).message).not.toContain('hunter2');
    }
    expect(() => parseDockerConfigSecret('opaque', { password: 'x' })).toThrow(/kubernetes.io\/dockerconfigjson/);
  });
});

describe('credentialValuesOf', () => {
  it("gives each entry's password, tokens, auth and the password inside auth, and nothing for entries without them", () => {
    const config = mergeDockerConfigs([
      plainCredentialsConfig([{ host: 'a.example', user: 'alice', password: 'pw-from:auth' }]),
      { auths: { 'b.example': { username: 'bob', password: 'bob-password' }, 'c.example': { identitytoken: 'id-token', registrytoken: 'reg-token' }, 'd.example': {} } },
    ]);
    expect(credentialValuesOf(config).sort()).toEqual(
      [Buffer.from('alice:pw-from:auth').toString('base64'), 'pw-from:auth', 'bob-password', 'id-token', 'reg-token'].sort(),
    );
  });

  it('gives a password with quotes, backslashes or line breaks also as the config file holds it, JSON-escaped', () => {
    const key = '{\n  "type": "service_account",\n  "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n"\n}';
    // As a pull secret of the cluster often holds it: username and password beside auth.
    const config = { auths: { 'gcr.io': { username: '_json_key', password: key, auth: Buffer.from(`_json_key:${key}`).toString('base64') } } };
    const file = Buffer.from(encodeDockerConfig(config), 'base64').toString('utf8');
    expect(file).toContain('service_account');
    const values = credentialValuesOf(config);
    expect(values).toContain(key);
    // What a RUN step that prints the file shows, with every such value masked, holds no part of the key.
    const printed = values.reduce((text, value) => text.split(value).join('*****'), file);
    expect(printed).not.toContain('service_account');
    expect(printed).not.toContain('MIIE');
  });

  it('ignores values that are not strings and an auth without a password', () => {
    const config = { auths: { 'x.example': { auth: Buffer.from('user-only:').toString('base64'), password: 42 } } } as unknown as Parameters<typeof credentialValuesOf>[0];
    expect(credentialValuesOf(config)).toEqual([Buffer.from('user-only:').toString('base64')]);
  });
});
