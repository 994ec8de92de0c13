/** Builds the adapters the activities need from the configuration: one place decides which backend is used. */
import type { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import type { Config } from '../lib/config';
import { BuildRepository } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import type { RegistryCredentials } from '../lib/executors/local/local-executor';
import { LocalExecutor } from '../lib/executors/local/local-executor';
import { RegistryClient } from '../lib/registry/client';
import { createObjectStore } from '../lib/storage';

/** The target registry's credentials (DOCKERHUB_USERNAME / DOCKERHUB_PASSWORD); handed only to the target's host. */
function targetCredentials(config: Config): { username: string; password: string } | undefined {
  const { username, password } = config.registry;
  return username && password ? { username, password } : undefined;
}

export async function createWorkerDependencies(config: Config): Promise<{ deps: ActivityDeps; pool: Pool }> {
  const pool = createPool(config.postgres);
  await migrate(pool);
  const storage = createObjectStore(config);
  const executor = new LocalExecutor({
    buildkitHost: config.executor.buildkitHost,
    buildctlPath: config.executor.buildctlPath,
    storage,
    contextLimits: config.contextLimits,
    insecureRegistry: config.registry.disableHttps,
    noCache: config.executor.noCache,
    credentials: async (job): Promise<RegistryCredentials[]> => {
      const host = job.repository.split('/')[0]!;
      const creds = targetCredentials(config);
      return creds ? [{ host, ...creds }] : [];
    },
  });
  const registry = new RegistryClient({
    disableHttps: config.registry.disableHttps,
    credentials: () => targetCredentials(config),
  });
  return {
    pool,
    deps: { builds: new BuildRepository(pool), storage, executor, registry, secrets: config.secrets },
  };
}
