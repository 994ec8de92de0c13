import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '.';

/** Runs loadConfig on `env` and answers every variable name it looked up. */
function variablesRead(env: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const tracked = new Proxy(env, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return Reflect.get(target, name) as unknown;
    },
  });
  try {
    loadConfig(tracked);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
  return read;
}

describe('docs/configuration.md', () => {
  const doc = readFileSync(join(__dirname, '../../docs/configuration.md'), 'utf8');

  it('documents every variable lib/config reads, in every storage and registry profile', () => {
    const profiles = ['aws,private_registry,minio', 'aws,ecr,s3', 'azure,acr,azure', 'gcp,gcr,gcs', ''];
    const names = new Set<string>();
    for (const profile of profiles) {
      const env = { SPRING_PROFILES_ACTIVE: profile, IMAGE_BUILDER_BUILD_ENGINE: 'kaniko', IMAGE_SIGNER_TYPE: 'notation', IMAGE_BUILDER_OTLP_ENABLED: 'true', IMAGE_BUILDER_SCANNER_ENABLED: 'true', NOTATION_PLUGIN: 'com.amazonaws.signer.notation.plugin', NOTATION_PROFILE: 'x', NOTATION_REGION: 'us-east-1' };
      for (const name of variablesRead(env)) names.add(name);
    }
    expect(names.size).toBeGreaterThan(100);
    // The table abbreviates families as `PREFIX_A` / `_B`; a name counts as documented in full or as prefix + suffix.
    const families = /^(IMAGE_BUILDER_RESOURCES_(?:REQUESTS|LIMITS)|IMAGE_BUILDER_MAX_RESOURCES|IMAGE_BUILDER_SCANNER_RESOURCES_(?:REQUESTS|LIMITS)|KANIKO_CONTAINER_SECURITY_CONTEXT(?:_CAPABILITIES)?|IMAGE_BUILDER_SECURITY_CONTEXT(?:_CAPABILITIES)?)_(.+)$/;
    const documented = (name: string) => {
      if (doc.includes(`\`${name}\``)) return true;
      const family = families.exec(name);
      return Boolean(family && doc.includes(family[1]!) && doc.includes(`_${family[2]}\``));
    };
    const undocumented = [...names].filter((name) => !documented(name));
    expect(undocumented).toEqual([]);
  });
});
