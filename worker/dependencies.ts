/** Builds the adapters the activities need from the configuration: one place decides which backend is used. */
import { Client, Connection } from '@temporalio/client';
import type { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import type { Config } from '../lib/config';
import { BuildSlotRepository } from '../lib/db/build-slots-repository';
import { BuildRepository } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import { buildPolicySettingsOf } from '../lib/policy/build-policy';
import { LogSegmentIndex } from '../lib/logs/segments';
import type { BuildExecutor } from '../lib/executors/executor';
import { createKubernetesExecutor, resolveKubernetesOptions } from '../lib/executors/kubernetes';
import { PodScanRunner } from '../lib/executors/kubernetes/pod-scanner';
import { loadKubeConfig } from '../lib/executors/kubernetes/kubernetes-executor';
import { createPullCredentials } from '../lib/sources/pull-credentials';
import { LocalExecutor } from '../lib/executors/local/local-executor';
import { ImageOwners, listedRegistryName } from '../lib/policy/targets';
import { knownConsumers } from '../lib/auth/authenticator';
import { registryHostOf, registryHostsOfDockerfile } from '../lib/registry/base-images';
import { RegistryClient } from '../lib/registry/client';
import { prepareBuilderAuth } from '../lib/registry/builder-auth';
import { builderCredentials, createCredentialProvider, type CredentialProvider } from '../lib/registry/credentials';
import { ScanGate } from '../lib/scan/gate';
import { reportDestination, type ReportDestination } from '../lib/scan/report-store';
import { RuncScanner } from '../lib/scan/runc-scanner';
import { NotationSigner } from '../lib/signing/notation';
import { createObjectStore, type ObjectStore } from '../lib/storage';
import type { Telemetry } from '../lib/telemetry';
import { instrumentObjectStore } from '../lib/telemetry/instrumented-store';
import { registryOutcomeOf } from '../lib/telemetry/metrics';
import { clientDataConverter } from '../lib/temporal/payload-encryption';
import { kubernetesSettingsFrom } from './kubernetes-settings';

/** Where scan reports go (imageScanner.reportUploadPath); an https one is held to ALLOW_SELF_SIGNED_CERTS like the rest. */
export function scanReportDestination(config: Config, storage: ObjectStore): ReportDestination {
  return reportDestination(config.imageScanner.reportUploadPath, config.storage, storage, { allowSelfSignedCerts: config.registry.allowSelfSignedCerts });
}

/**
 * The executor BUILD_EXECUTOR names. Either way the builder gets credentials only for the hosts it talks to,
 * minted by the registry type's provider when the build starts.
 */
function createExecutor(config: Config, storage: ObjectStore, credentials: CredentialProvider, registry: RegistryClient, scanner: RuncScanner | undefined, telemetry?: Telemetry): BuildExecutor {
  if (config.executor.type === 'kubernetes') {
    // Base-image registries reach builder pods through the pull secrets; the provider covers the push target.
    return createKubernetesExecutor(kubernetesSettingsFrom(config), {
      storage,
      telemetry,
      insecureRegistry: config.registry.disableHttps,
      allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
      credentials: (job) => builderCredentials(credentials, [registryHostOf(job.repository)]),
    });
  }
  return new LocalExecutor({
    buildkitHost: config.executor.buildkitHost,
    buildctlPath: config.executor.buildctlPath,
    storage,
    contextLimits: config.contextLimits,
    insecureRegistry: config.registry.disableHttps,
    noCache: config.executor.noCache,
    otlpEndpoint: config.tracing.enabled ? config.otlp.endpoint : undefined,
    scanner,
    builderAuth: (job, dockerfile, dir) =>
      prepareBuilderAuth(credentials, [registryHostOf(job.repository), ...registryHostsOfDockerfile(dockerfile, job.buildArgs)], dir, {
        onRefreshError: (err) => {
          telemetry?.metrics.suppressedErrors.inc({ operation: 'registry_credentials_refresh' });
          telemetry?.logger.warn({ err, buildId: job.buildId, registry: registryHostOf(job.repository) }, "renewing the builder's registry credentials failed; it keeps the previous ones");
        },
      }),
  });
}

function podScanRunner(config: Config, storage: ObjectStore): PodScanRunner {
  const options = resolveKubernetesOptions(kubernetesSettingsFrom(config));
  return new PodScanRunner(options, { storage, allowSelfSignedCerts: config.registry.allowSelfSignedCerts }, loadKubeConfig(options));
}

/** `telemetry` is the worker's logger and metrics (worker/main.ts); tests that do not look leave it out. */
export async function createWorkerDependencies(config: Config, telemetry?: Telemetry): Promise<{ deps: ActivityDeps; pool: Pool }> {
  const pool = createPool(config.postgres, telemetry?.logger);
  await migrate(pool);
  const store = createObjectStore(config);
  const storage = telemetry ? instrumentObjectStore(store, telemetry.metrics) : store;
  const credentials = createCredentialProvider(config.registry);
  // Copying a sourceImage pulls with the builders' pull credentials; the push credentials win for their own hosts,
  // as they do in a builder pod's docker config.
  const pullCredentials = createPullCredentials(config.pullCredentials, config.imageBuilder.namespace, () =>
    loadKubeConfig({ kubeconfigPath: config.executor.kubeconfig }),
  );
  const registry = new RegistryClient({
    disableHttps: config.registry.disableHttps,
    allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
    credentials: async (host) => (await credentials.credentialsFor(host)) ?? (await pullCredentials?.credentialsFor(host)),
    // A consumer's registry name that now resolves inside the network (DNS rebinding since the API's check) is refused.
    mayResolveInternally: listedRegistryName(config),
    onRequest: telemetry
      ? (method, status) => telemetry.metrics.registryRequests.inc({ method, outcome: status === 'network_error' ? status : registryOutcomeOf(status) })
      : undefined,
  });
  // The fair build queue's activities signal the builds they grant and describe builds (activities/build-queue.ts).
  const temporal = new Client({
    connection: Connection.lazy({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    dataConverter: clientDataConverter(config.temporal.payloadKeys),
  });
  const signer =
    config.signing.type === 'notation'
      ? new NotationSigner({
          ...config.signing,
          insecureRegistry: config.registry.disableHttps,
          credentials: (host) => credentials.credentialsFor(host),
          registry,
          secrets: config.secrets,
        })
      : undefined;
  await signer?.prepareConfig();
  // The local executor's scanner runs on this host; it also scans images that need no build (activities/sources.ts),
  // which on Kubernetes run in scan pods of their own (builds are scanned in their builder pods).
  const scanner = config.imageScanner.enabled && config.executor.type === 'local' ? new RuncScanner({ runcPath: config.executor.runcPath, registry }) : undefined;
  const sourceScanner = config.imageScanner.enabled && config.executor.type === 'kubernetes' ? podScanRunner(config, storage) : scanner;
  const builds = new BuildRepository(pool);
  return {
    pool,
    deps: {
      temporal,
      buildSlots: config.build.slots,
      builds,
      slots: new BuildSlotRepository(pool),
      storage,
      executor: createExecutor(config, storage, credentials, registry, scanner, telemetry),
      registry,
      policy: buildPolicySettingsOf(config),
      imageOwners: new ImageOwners({ repositories: config.policy.targetRepositories }, { named: knownConsumers(config.auth), recorded: () => builds.consumers() }),
      secrets: config.secrets,
      telemetry,
      // Log storage trouble is logged and counted with the rest of the worker's (lib/logs/build-log.ts).
      buildLogs: { index: new LogSegmentIndex(pool), ...config.buildLogs, telemetry },
      dependencies: config.dependencies,
      scanGate: config.imageScanner.enabled
        ? new ScanGate({
            config: config.imageScanner,
            registry,
            storage,
            destination: scanReportDestination(config, storage),
            runner: sourceScanner,
          })
        : undefined,
      signer,
    },
  };
}
