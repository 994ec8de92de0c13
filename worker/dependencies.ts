/** Builds the adapters the activities need from the configuration: one place decides which backend is used. */
import type { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import type { Config } from '../lib/config';
import { BuildRepository } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import type { RegistryCredentials } from '../lib/executors/local/local-executor';
import { LocalExecutor } from '../lib/executors/local/local-executor';
import { registryHostOf, registryHostsOfDockerfile } from '../lib/registry/base-images';
import { RegistryClient } from '../lib/registry/client';
import { builderCredentials, createCredentialProvider } from '../lib/registry/credentials';
import { createObjectStore } from '../lib/storage';

export async function createWorkerDependencies(config: Config): Promise<{ deps: ActivityDeps; pool: Pool }> {
  const pool = createPool(config.postgres);
  await migrate(pool);
  const storage = createObjectStore(config);
  const credentials = createCredentialProvider(config.registryAuth);
  const executor = new LocalExecutor({
    buildkitHost: config.executor.buildkitHost,
    buildctlPath: config.executor.buildctlPath,
    storage,
    contextLimits: config.contextLimits,
    insecureRegistry: config.registry.disableHttps,
    noCache: config.executor.noCache,
    // Each registry type's provider hands credentials only to its own hosts, minted when the build starts.
    credentials: (job, dockerfile): Promise<RegistryCredentials[]> =>
      builderCredentials(credentials, [registryHostOf(job.repository), ...registryHostsOfDockerfile(dockerfile, job.buildArgs)]),
  });
  const registry = new RegistryClient({
    disableHttps: config.registry.disableHttps,
    allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
    credentials: (host) => credentials.credentialsFor(host),
  });
  return {
    pool,
    deps: { builds: new BuildRepository(pool), storage, executor, registry, secrets: config.secrets },
  };
}
