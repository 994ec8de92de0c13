import type { Config } from '../lib/config';
import type { ApiDeps } from './deps';

/** The API's settings, read from the service's configuration (api/main.ts; the tests' stack overrides a few). */
export function apiSettingsOf(config: Config): ApiDeps['settings'] {
  return {
    taskQueue: config.temporal.taskQueue,
    namespace: config.temporal.namespace,
    publicUrl: config.api.publicUrl,
    temporalUiUrl: config.temporal.uiUrl,
    contextLimits: config.contextLimits,
    imageArchiveLimits: config.imageArchiveLimits,
    storageReuseMaxAgeMs: config.storageReuseMaxAgeMs,
    defaultEngine: config.build.defaultEngine,
    defaultTimeoutSeconds: config.build.defaultTimeoutSeconds,
    maxTimeoutSeconds: config.build.maxTimeoutSeconds,
    maxUnfinishedPerConsumer: config.build.maxUnfinishedPerConsumer,
    buildResources: { defaults: config.imageBuilder.resources, ceiling: config.imageBuilder.maxResources, useQemu: config.imageBuilder.useQemu },
  };
}
