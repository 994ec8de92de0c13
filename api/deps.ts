import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import type { Authenticator } from '../lib/auth/authenticator';
import type { Principal } from '../lib/config/auth';
import type { ContextLimits } from '../lib/context/archive';
import type { BuildRepository } from '../lib/db/builds-repository';
import type { RegistryClient } from '../lib/registry/client';
import type { ImageArchiveLimits } from '../lib/sources/image-archive';
import type { ObjectStore } from '../lib/storage/object-store';
import type { Logger } from '../lib/telemetry/logger';
import type { ServiceMetrics } from '../lib/telemetry/metrics';
import type { BuildEngine } from '../workflows/definitions';
import type { BuildRequestPolicy } from './builds/policy';
import type { BuildLogHub } from './builds/log-hub';
import type { WorkflowStarter } from './builds/workflow-starter';
import type { QueuePlaces } from './builds/queue-places';
import type { ConsumerShares } from './builds/admission';
import type { BuildResourceSettings } from './builds/resources';

/** What the API's handlers need, handed in by api/main.ts (or a test) through the app's typed context. */
export interface ApiDeps {
  builds: BuildRepository;
  storage: ObjectStore;
  temporal: Client;
  /**
   * Opens the payloads the service sealed in Temporal (TEMPORAL_PAYLOAD_ENCRYPTION_KEYS), for the Web UI's and CLI's
   * codec endpoint (api/temporal-codec); unset, payloads are not sealed and the endpoint answers them as they came.
   */
  payloadCodec?: PayloadCodec;
  /** The process's logger and metrics (api/main.ts); without them requests go unlogged and /metrics is absent. */
  telemetry?: { logger: Logger; metrics?: ServiceMetrics };
  /** Who is calling: every /v1 request is authenticated by this (api/auth.ts). */
  auth: Authenticator;
  /** The request-time policy checks of a build (target registry, base images, frontends, entitlements, ADD URLs). */
  policy: BuildRequestPolicy;
  /** Build logs, stored and followed (one shared tail per followed build); createApp makes one when not given. */
  logs: BuildLogHub;
  /** Starts accepted builds' workflows after the answer, and sweeps for starts that did not happen (createApp makes one). */
  starter: WorkflowStarter;
  /** The places in the fair queue shown on waiting builds, shared between readers for a moment (createApp makes one). */
  queuePlaces: QueuePlaces;
  /** Each consumer's count of unfinished builds, which new builds are admitted by (builds/admission.ts). */
  shares: ConsumerShares;
  /**
   * The service's registry client: answers whether an earlier identical build's image is still served (reuse) and
   * whether a failed build's pushed image is still there (retry from the failed step). Without it neither happens.
   */
  registry?: RegistryClient;
  /**
   * Whether the process is stopping (SIGTERM, api/main.ts). During its shutdown delay it still answers, but /readyz
   * answers 503 and every answer closes its connection, so load balancers and keep-alive clients move to another API.
   */
  stopping?: () => boolean;
  settings: {
    taskQueue: string;
    namespace: string;
    publicUrl: string;
    temporalUiUrl: string;
    contextLimits: ContextLimits;
    imageArchiveLimits: ImageArchiveLimits;
    /** How long a stored context or image blob is reused by later builds (lib/storage/reuse.ts). */
    storageReuseMaxAgeMs: number;
    defaultEngine: BuildEngine;
    defaultTimeoutSeconds: number;
    maxTimeoutSeconds: number;
    /** Builds of one consumer not yet finished past which new ones are refused (0: no limit; builds/admission.ts). */
    maxUnfinishedPerConsumer: number;
    buildResources: BuildResourceSettings;
    /** Where uploads are spooled while they are validated. */
    spoolDir?: string;
  };
}

export interface AppEnv {
  Variables: {
    deps: ApiDeps;
    principal: Principal;
    /** The build a request created or acted on, for its log line (set by the handler that knows it). */
    buildId?: string;
    /** The consumer a request acts for once X-Consumer was accepted (an operator submitting for one), for its log line. */
    actingFor?: string;
  };
}
