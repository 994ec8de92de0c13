/**
 * The builder pod of one build, as plain data: one template per engine mode (rootless BuildKit, BuildKit in QEMU,
 * Kaniko). Every container runs the image-builder's entrypoints from infra/images, whose contract is the IBS_* env
 * below: `ibs-fetch-context` downloads the context from a presigned URL into /workspace/context (so the context never
 * passes through the API server), `ibs-build` builds, pushes by digest and writes {"digest": ...} as the container's
 * termination message. A dependency build's generated Dockerfile travels in the build's secret and is copied into the
 * fetched context by one more init container (`contextInitContainers`), so every engine reads it as a file of
 * the context.
 */
import { createHash } from 'node:crypto';
import type { V1Container, V1EnvVar, V1LocalObjectReference, V1Pod, V1SecurityContext, V1Volume } from '@kubernetes/client-node';
import { IMAGE_ARCHIVE, SCAN_REPORT, SHARED_DIR, type ScannerRun } from '../../scan/contract';
import { qemuMemoryAdvice, qemuVmSize } from '../../config';
import type { PresignedPut } from '../../storage/object-store';
import { BuildFailedError, type BuildJob } from '../executor';
import type { BuilderResources, ImageBuilderSecurityContext, KanikoContainerSecurityContext, KubernetesExecutorOptions } from './options';
import { defaultImageBuilderSecurityContext } from './options';
import { containerResources } from './resources';

export type EngineMode = 'buildkit-rootless' | 'buildkit-qemu' | 'kaniko';

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  buildId: 'image-build-service/build-id',
  consumer: 'image-build-service/consumer',
  engine: 'image-build-service/engine',
  /** On scan pods (scanPodFor), which scan an image that needed no build. */
  scan: 'image-build-service/scan',
} as const;
export const MANAGED_BY = 'image-build-service';
/** When a retained pod may be deleted (RFC 3339); set on finished pods when retention is on. */
export const EXPIRES_AT_ANNOTATION = 'image-build-service/expires-at';
/** The workflow run whose attempt created a builder pod (BuildJob.runId). */
export const RUN_ID_ANNOTATION = 'image-build-service/run-id';
/** OpenShift 4.14+ admits the pod under this SCC when the service account may use it. */
const OPENSHIFT_SCC_ANNOTATION = 'openshift.io/required-scc';

export const BUILD_CONTAINER = 'build';
export const FETCH_CONTAINER = 'fetch-context';
const DEPENDENCY_DOCKERFILE_CONTAINER = 'dependency-dockerfile';
/** Key of the build's secret that holds a dependency build's generated Dockerfile. */
export const GENERATED_DOCKERFILE_KEY = 'generated-dockerfile';
/** Where the generated Dockerfile lands in the context: the ibs-build entrypoint reads IBS_DOCKERFILE from there. */
export const GENERATED_DOCKERFILE_PATH = '.ibs-dependencies.Dockerfile';
const GENERATED_DOCKERFILE_DIR = '/ibs/generated';
/**
 * Keys of the build's secret that hold the job's build arguments and BuildKit secrets (encodedPairs), which the
 * build container reads as IBS_BUILD_ARGS and IBS_SECRETS (infra/images/image-builder/ibs-build). Both can hold
 * credentials (the proxy's, the mirrors', whatever a consumer passes as an argument), so neither is in the pod
 * spec, which anyone who may read pods in the build namespace can read.
 */
const BUILD_ARGS_KEY = 'build-args';
const BUILD_SECRETS_KEY = 'build-secrets';
/**
 * Key of the build's secret that holds the context's presigned URL, which the fetch init container reads as
 * IBS_CONTEXT_URL: the URL is a credential to the consumer's context, so it is not in the pod spec either.
 */
export const CONTEXT_URL_KEY = 'context-url';
export const SCAN_CONTAINER = 'scan';
/**
 * The build's scratch in the shared emptyDir (IBS_GATE_TOOLS of ibs-build: Kaniko's OCI layout and the busybox that
 * packs it). RUN steps can write there (Kaniko runs them in the build container itself), so the scanner container
 * runs nothing from it.
 */
const BUILD_SCRATCH = `${SHARED_DIR}/.ibs`;
/**
 * The gate's tools: the static busybox the scanner container's script runs under, in a volume that only
 * GATE_TOOLS_CONTAINER writes (after the build ended, from a fresh container of the builder image) and that the
 * scanner mounts read-only. The build container never mounts it.
 */
export const GATE_TOOLS_CONTAINER = 'gate-tools';
const GATE_TOOLS_VOLUME = 'gate-tools';
const GATE_TOOLS_DIR = '/ibs/gate-tools';
const WORKSPACE = '/workspace';
const DOCKER_CONFIG_DIR = '/ibs/docker';
const ROOTLESS_UID = 1000;

export interface BuilderPodInput {
  job: BuildJob;
  options: KubernetesExecutorOptions;
  resources: BuilderResources;
  /** Push over plain HTTP (DISABLE_HTTPS). */
  insecureRegistry: boolean;
  /** ALLOW_SELF_SIGNED_CERTS: the context download and the registries' TLS certificates are not verified. */
  allowSelfSignedCerts?: boolean;
  /** The scanner gate: the build writes /shared/image.tar, the scanner container scans and uploads it. */
  gate?: PodGate;
}

/** The scanner of a gated build's pod, and where its container uploads the report and the scanned archive. */
export interface PodGate extends ScanUploads {
  archiveUpload: PresignedPut;
}

/** What a scanner container runs and where it uploads: the report always, the scanned archive when one is asked for. */
export interface ScanUploads {
  scanner: ScannerRun;
  reportUpload: PresignedPut;
  archiveUpload?: PresignedPut;
}

/** DNS-1123 label safe, deterministic per build: a second create of the same build hits the same name. */
export function builderPodName(buildId: string): string {
  const clean = buildId.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  const name = `ibs-build-${clean}`;
  if (name.length <= 53 && clean === buildId) return name;
  // Long or rewritten ids get a hash suffix so two ids that clean up alike still get different pods.
  const hash = createHash('sha256').update(buildId).digest('hex').slice(0, 10);
  return `ibs-build-${clean.slice(0, 36).replace(/-+$/, '')}-${hash}`;
}

export function dockerConfigSecretName(buildId: string): string {
  return `${builderPodName(buildId)}-registry`;
}

/** A label value (63 chars of [A-Za-z0-9._-], alphanumeric at both ends). */
export function labelValue(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

export function engineModeFor(job: Pick<BuildJob, 'engine'>, options: KubernetesExecutorOptions): EngineMode {
  const engine = job.engine ?? options.imageBuilder.engine;
  if (engine === 'kaniko') return 'kaniko';
  return options.imageBuilder.useQemu ? 'buildkit-qemu' : 'buildkit-rootless';
}

/** The image each mode runs: `<repository>/<name>:<version>` with a per-variant tag suffix, or KANIKO_IMAGE. */
export function builderImageFor(mode: EngineMode, options: KubernetesExecutorOptions): string {
  const ib = options.imageBuilder;
  const base = `${ib.repository}/${ib.name}`;
  switch (mode) {
    case 'kaniko':
      return ib.kaniko.image || `${base}:${ib.version}-kaniko-image`;
    case 'buildkit-qemu':
      return `${base}:${ib.version}-qemu-image`;
    case 'buildkit-rootless':
      return `${base}:${ib.version}`;
  }
}

/** The pod for one build: metadata, then the mode's template. */
export function builderPodFor(input: BuilderPodInput): V1Pod {
  const { job, options } = input;
  const mode = engineModeFor(job, options);
  const podName = builderPodName(job.buildId);
  const annotations: Record<string, string> = { ...options.podAnnotations };
  if (mode === 'buildkit-qemu' && options.scc) annotations[OPENSHIFT_SCC_ANNOTATION] = options.scc;
  if (job.runId) annotations[RUN_ID_ANNOTATION] = job.runId;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName,
      namespace: options.namespace,
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.component]: 'image-builder',
        [LABELS.buildId]: labelValue(job.buildId),
        [LABELS.consumer]: labelValue(job.consumer ?? 'unknown') || 'unknown',
        [LABELS.engine]: mode,
      },
      annotations,
    },
    spec: withScanner(mode === 'kaniko' ? kanikoPodSpec(input) : buildkitPodSpec(input, mode), input, mode),
  };
}

/**
 * The scanner gate's pod (spec "Image scanning"): the build container becomes an init container that writes
 * /shared/image.tar (an emptyDir) instead of pushing, the gate-tools init container then copies the builder image's
 * static busybox into a volume of its own, and the scanner runs last as the pod's container, with its configured
 * command, args, env (from the build's secret, never in the pod spec) and resources. The scanner's command runs
 * under that busybox, so any scanner image works; afterwards it uploads the report (always) and the archive (only
 * when the scan passed) with the scanner image's curl to presigned URLs, and reports the scanner's exit code as its
 * termination message. The worker then judges the scan and pushes the archive with the service's registry client
 * (lib/scan/gate.ts), the same as locally.
 *
 * Everything in /shared is the consumer's: with Kaniko, RUN steps run in the build container with /shared
 * mounted. The scanner reads image.tar from it (the image the consumer built, which is what it scans) and nothing
 * it runs or trusts; it runs as the rootless user without capabilities whatever the engine, since it holds the
 * scanner's tokens and the upload URLs.
 */
function withScanner(spec: NonNullable<V1Pod['spec']>, input: BuilderPodInput, mode: EngineMode): NonNullable<V1Pod['spec']> {
  const gate = input.gate;
  if (!gate) return spec;
  const [build, ...others] = spec.containers;
  if (!build || others.length > 0) throw new Error('a builder pod has exactly one build container');
  const sharedMount = { name: 'shared', mountPath: SHARED_DIR };
  const gatedBuild: V1Container = {
    ...build,
    env: [...(build.env ?? []), { name: 'IBS_ARCHIVE', value: `${SHARED_DIR}/image.tar` }, { name: 'IBS_GATE_TOOLS', value: BUILD_SCRATCH }],
    volumeMounts: [...(build.volumeMounts ?? []), sharedMount],
  };
  // Kaniko's SELinux type (spc_t) would leave the scanner unconfined: with Kaniko it gets the pod's default. The
  // archive is readable to it: BuildKit writes it as this user, ibs-build makes Kaniko's world-readable.
  const securityContext = restrictedSecurityContext(mode === 'kaniko' ? undefined : build.securityContext);
  const scanner = scannerContainer(gate, dockerConfigSecretName(input.job.buildId), securityContext, input.allowSelfSignedCerts);
  return {
    ...spec,
    initContainers: [...(spec.initContainers ?? []), gatedBuild, gateToolsContainer(build.image as string, securityContext)],
    containers: [scanner],
    volumes: [...(spec.volumes ?? []), { name: 'shared', emptyDir: {} }, { name: 'scanner-tmp', emptyDir: {} }, gateToolsVolume()],
  };
}

/**
 * The init container that fills the gate's tools volume: a fresh container of `image` (the builder image), so
 * nothing a build did reaches it (Kaniko rewrites / of its own container); it mounts the tools volume only. The
 * QEMU image's busybox is the VM's; the others' is on the PATH or behind /bin/sh (busybox's own shell answers
 * `command -v busybox` with the bare applet name).
 */
function gateToolsContainer(image: string, securityContext: V1SecurityContext): V1Container {
  return {
    name: GATE_TOOLS_CONTAINER,
    image,
    command: ['/bin/sh', '-c', [
      'set -e',
      'bb=/vm/rootfs/bin/busybox',
      'if [ ! -f "$bb" ]; then bb=$(command -v busybox || true); case "$bb" in /*) ;; *) bb=$(readlink -f /bin/sh) ;; esac; fi',
      'cp "$bb" "$0/busybox"',
      // It runs on its own, as it must in the scanner's image, which may have nothing else.
      '"$0/busybox" true',
    ].join('\n'), GATE_TOOLS_DIR],
    volumeMounts: [{ name: GATE_TOOLS_VOLUME, mountPath: GATE_TOOLS_DIR }],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function gateToolsVolume(): V1Volume {
  return { name: GATE_TOOLS_VOLUME, emptyDir: { sizeLimit: '16Mi' } };
}

/**
 * The gate's scanner container (builder pods and scan pods alike): the configured scanner under the static busybox
 * of the gate's tools volume (read-only), its env and the upload URLs from `secretName`; without an archive upload
 * it uploads the report only.
 */
function scannerContainer(gate: ScanUploads, secretName: string, securityContext: V1SecurityContext | undefined, allowSelfSignedCerts?: boolean): V1Container {
  const fromSecret = (name: string, key: string): V1EnvVar => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });
  return {
    name: SCAN_CONTAINER,
    image: gate.scanner.image,
    command: [`${GATE_TOOLS_DIR}/busybox`, 'sh', '-c', SCAN_SCRIPT, 'ibs-scan', ...gate.scanner.command, ...gate.scanner.args],
    env: [
      ...Object.keys(gate.scanner.env).map((name) => fromSecret(name, scannerEnvKey(name))),
      fromSecret('IBS_REPORT_URL', REPORT_URL_KEY),
      ...(gate.archiveUpload ? [fromSecret('IBS_ARCHIVE_URL', ARCHIVE_URL_KEY)] : []),
      // The store's header for presigned PUTs (Azure's blob type), the same for both uploads.
      { name: 'IBS_UPLOAD_HEADER', value: Object.entries(gate.reportUpload.headers).map(([k, v]) => `${k}: ${v}`)[0] ?? '' },
      { name: 'IBS_ALLOW_SELF_SIGNED_CERTS', value: String(allowSelfSignedCerts ?? false) },
    ],
    resources: { requests: { ...gate.scanner.resources.requests }, limits: { ...gate.scanner.resources.limits } },
    securityContext,
    volumeMounts: [
      { name: 'shared', mountPath: SHARED_DIR },
      { name: 'scanner-tmp', mountPath: '/tmp' },
      { name: GATE_TOOLS_VOLUME, mountPath: GATE_TOOLS_DIR, readOnly: true },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** Keys of the build's secret that the scanner container reads (its env values and the upload URLs). */
export const REPORT_URL_KEY = 'scan-report-url';
export const ARCHIVE_URL_KEY = 'scan-archive-url';
export function scannerEnvKey(name: string): string {
  return `scanner-env.${name}`;
}

/** The scanner container's exit code when what the build left in /shared is refused before the scan. */
export const SHARED_REFUSED_EXIT = 72;

/** Pod Security `restricted`: the rootless user, no capabilities, no escalation; SELinux as `like` has it. */
function restrictedSecurityContext(like?: V1SecurityContext): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    runAsNonRoot: true,
    runAsUser: ROOTLESS_UID,
    runAsGroup: ROOTLESS_UID,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
    seLinuxOptions: like?.seLinuxOptions,
  };
}

/**
 * Runs the scanner ("$@"), then uploads what the gate needs with curl (which the spec requires of scanner images)
 * and reports {"scanExitCode": N}. It exits 0 whenever the uploads worked, so a failed scan still delivers its
 * report; the worker decides. The build could have left anything in /shared: image.tar must be a file of its own
 * (a symbolic link would have the scanner and curl read a file of this container), and a report there before the
 * scan is removed, so that only the scanner's own is uploaded.
 */
const SCAN_SCRIPT = [
  `[ -f ${SHARED_DIR}/${IMAGE_ARCHIVE} ] && [ ! -L ${SHARED_DIR}/${IMAGE_ARCHIVE} ] || { echo "[ibs] ${SHARED_DIR}/${IMAGE_ARCHIVE} is not a regular file" >&2; exit ${SHARED_REFUSED_EXIT}; }`,
  `rm -f ${SHARED_DIR}/${SCAN_REPORT} || { echo "[ibs] ${SHARED_DIR}/${SCAN_REPORT} was there before the scan and could not be removed" >&2; exit ${SHARED_REFUSED_EXIT}; }`,
  '"$@"; code=$?',
  'insecure=""; [ "$IBS_ALLOW_SELF_SIGNED_CERTS" != true ] || insecure=--insecure',
  'put() { curl -fsS $insecure ${IBS_UPLOAD_HEADER:+-H "$IBS_UPLOAD_HEADER"} -X PUT -T "$1" "$2"; }',
  'if [ -f /shared/scan-report.json ]; then put /shared/scan-report.json "$IBS_REPORT_URL" || { echo "[ibs] the scan report could not be uploaded" >&2; exit 70; }; fi',
  'if [ "$code" -eq 0 ] && [ -n "${IBS_ARCHIVE_URL:-}" ] && [ -f /shared/scan-report.json ]; then put /shared/image.tar "$IBS_ARCHIVE_URL" || { echo "[ibs] the image archive could not be uploaded" >&2; exit 71; }; fi',
  `printf '{"scanExitCode":%d}' "$code" >/dev/termination-log`,
].join('\n');

function commonPodSpec(input: BuilderPodInput): NonNullable<V1Pod['spec']> {
  const { job, options } = input;
  return {
    restartPolicy: 'Never',
    // The executor stops the build at timeoutSeconds; the deadline is the cluster's backstop if the worker is gone.
    activeDeadlineSeconds: job.timeoutSeconds + 60,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    serviceAccountName: options.serviceAccountName,
    imagePullSecrets: imagePullSecretsOf(options),
    containers: [],
  };
}

/** The global image pull secrets, unless imagePullSecrets.mount is off. */
function imagePullSecretsOf(options: KubernetesExecutorOptions): V1LocalObjectReference[] | undefined {
  const names = options.pullCredentials.mountImagePullSecrets ? options.pullCredentials.imagePullSecrets : [];
  return names.length > 0 ? names.map((name) => ({ name })) : undefined;
}

function volumes(job: BuildJob, extra: V1Volume[] = []): V1Volume[] {
  return [
    { name: 'workspace', emptyDir: {} },
    {
      name: 'docker-config',
      // Owner-read only: the kubelet adds group read for the pod's fsGroup, which is rootless BuildKit's user; no
      // other user of the container reads the credentials.
      secret: { secretName: dockerConfigSecretName(job.buildId), items: [{ key: '.dockerconfigjson', path: 'config.json' }], defaultMode: 0o400 },
    },
    ...(job.generatedDockerfile === undefined
      ? []
      : [{ name: 'generated-dockerfile', secret: { secretName: dockerConfigSecretName(job.buildId), items: [{ key: GENERATED_DOCKERFILE_KEY, path: 'Dockerfile' }], defaultMode: 0o444 } }]),
    ...extra,
  ];
}

/**
 * The context-fetch init container, then for a dependency build the one that puts the generated Dockerfile into the
 * fetched context (replacing whatever the consumer's context had at that path), with the same image and user.
 */
function contextInitContainers(image: string, input: BuilderPodInput, securityContext: V1SecurityContext): V1Container[] {
  const fetch = fetchContextContainer(image, input, securityContext);
  if (input.job.generatedDockerfile === undefined) return [fetch];
  return [
    fetch,
    {
      name: DEPENDENCY_DOCKERFILE_CONTAINER,
      image,
      command: ['/bin/sh', '-c', 'rm -rf -- "$IBS_CONTEXT_DIR/$1" && cp "$0/Dockerfile" "$IBS_CONTEXT_DIR/$1"', GENERATED_DOCKERFILE_DIR, GENERATED_DOCKERFILE_PATH],
      env: [{ name: 'IBS_CONTEXT_DIR', value: `${WORKSPACE}/context` }],
      volumeMounts: [{ name: 'workspace', mountPath: WORKSPACE }, { name: 'generated-dockerfile', mountPath: GENERATED_DOCKERFILE_DIR, readOnly: true }],
      resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
      securityContext,
      terminationMessagePolicy: 'FallbackToLogsOnError',
    },
  ];
}

function fetchContextContainer(image: string, input: BuilderPodInput, securityContext: V1SecurityContext): V1Container {
  return {
    name: FETCH_CONTAINER,
    image,
    command: ['/usr/local/bin/ibs-fetch-context'],
    env: [
      // No start-up delay: the build container mounts the same secret as the non-optional docker-config volume, and
      // the kubelet mounts every volume a container of the pod uses before it starts any, init containers included.
      { name: 'IBS_CONTEXT_URL', valueFrom: { secretKeyRef: { name: dockerConfigSecretName(input.job.buildId), key: CONTEXT_URL_KEY } } },
      { name: 'IBS_CONTEXT_DIR', value: `${WORKSPACE}/context` },
      allowSelfSignedCertsEnv(input),
    ],
    volumeMounts: [{ name: 'workspace', mountPath: WORKSPACE }],
    resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    securityContext,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** What to build: the same variables for every engine, read by infra/images/image-builder/ibs-build. */
function buildEnv(input: BuilderPodInput): V1EnvVar[] {
  const { job } = input;
  const env: V1EnvVar[] = [
    { name: 'IBS_BUILD_ID', value: job.buildId },
    { name: 'IBS_CONTEXT_DIR', value: `${WORKSPACE}/context` },
    { name: 'IBS_DOCKERFILE', value: job.generatedDockerfile === undefined ? job.dockerfile : GENERATED_DOCKERFILE_PATH },
    { name: 'IBS_REPOSITORY', value: job.repository },
    { name: 'IBS_PLATFORMS', value: job.platforms.join(',') },
    { name: 'IBS_LABELS', value: encodedPairs(job.labels) },
    { name: 'IBS_INSECURE_REGISTRY', value: String(input.insecureRegistry) },
    allowSelfSignedCertsEnv(input),
    { name: 'IBS_NO_CACHE', value: String(job.noCache ?? false) },
    { name: 'DOCKER_CONFIG', value: DOCKER_CONFIG_DIR },
  ];
  if (job.target) env.push({ name: 'IBS_TARGET', value: job.target });
  for (const [name, key] of [['IBS_BUILD_ARGS', BUILD_ARGS_KEY], ['IBS_SECRETS', BUILD_SECRETS_KEY]] as const) {
    if (key in buildSecretData(job)) env.push({ name, valueFrom: { secretKeyRef: { name: dockerConfigSecretName(job.buildId), key } } });
  }
  return env;
}

/** The build arguments and BuildKit secrets as data of the build's secret (base64 of their encodedPairs), if any. */
export function buildSecretData(job: Pick<BuildJob, 'buildArgs' | 'secrets'>): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, pairs] of [[BUILD_ARGS_KEY, job.buildArgs], [BUILD_SECRETS_KEY, job.secrets ?? {}]] as const) {
    if (Object.keys(pairs).length > 0) data[key] = Buffer.from(encodedPairs(pairs)).toString('base64');
  }
  return data;
}

function allowSelfSignedCertsEnv(input: BuilderPodInput): V1EnvVar {
  return { name: 'IBS_ALLOW_SELF_SIGNED_CERTS', value: String(input.allowSelfSignedCerts ?? false) };
}

/** One KEY=<base64 value> per line: the entrypoint is a busybox script, and values may hold any character. */
export function encodedPairs(pairs: Record<string, string>): string {
  return Object.entries(pairs)
    .map(([key, value]) => `${key}=${Buffer.from(value).toString('base64')}`)
    .join('\n');
}

function commonMounts() {
  return [
    { name: 'workspace', mountPath: WORKSPACE },
    { name: 'docker-config', mountPath: DOCKER_CONFIG_DIR, readOnly: true },
  ];
}

/** imageBuilder.securityContext as a container security context; empty strings leave a field to the cluster. */
function imageBuilderContainerSecurityContext(sc: ImageBuilderSecurityContext): V1SecurityContext {
  return {
    allowPrivilegeEscalation: sc.allowPrivilegeEscalation,
    runAsNonRoot: true,
    runAsUser: ROOTLESS_UID,
    runAsGroup: ROOTLESS_UID,
    capabilities: { drop: [...sc.capabilities.drop], add: sc.capabilities.add.length > 0 ? [...sc.capabilities.add] : undefined },
    seccompProfile: sc.seccompProfileType ? { type: sc.seccompProfileType } : undefined,
    seLinuxOptions: sc.seLinuxType ? { type: sc.seLinuxType } : undefined,
  };
}

/** The chart's KANIKO_CONTAINER_SECURITY_CONTEXT_*, for Kaniko containers and init containers alike. */
function kanikoSecurityContext(sc: KanikoContainerSecurityContext): V1SecurityContext {
  return {
    runAsUser: sc.runAsUser,
    runAsGroup: sc.runAsGroup,
    runAsNonRoot: sc.runAsNonRoot,
    privileged: sc.privileged,
    allowPrivilegeEscalation: sc.allowPrivilegeEscalation,
    readOnlyRootFilesystem: sc.readOnlyRootFilesystem,
    capabilities: { drop: [...sc.capabilities.drop], add: sc.capabilities.add.length > 0 ? [...sc.capabilities.add] : undefined },
    seccompProfile: sc.seccompProfileType ? { type: sc.seccompProfileType } : undefined,
    seLinuxOptions: sc.seLinuxType ? { type: sc.seLinuxType } : undefined,
  };
}

/** Rootless BuildKit (buildctl-daemonless) in the pod, or the same inside a QEMU VM when useQemu is set. */
function buildkitPodSpec(input: BuilderPodInput, mode: 'buildkit-rootless' | 'buildkit-qemu'): NonNullable<V1Pod['spec']> {
  const { job, options } = input;
  const ib = options.imageBuilder;
  const image = builderImageFor(mode, options);
  const securityContext = imageBuilderContainerSecurityContext(ib.securityContext ?? defaultImageBuilderSecurityContext(mode === 'buildkit-qemu'));
  // Rootless BuildKit mounts inside its own user namespace, which AppArmor's default profile forbids; in QEMU the
  // mounts happen inside the VM, so the pod keeps the runtime's default profile.
  if (mode === 'buildkit-rootless' && securityContext.seccompProfile?.type === 'Unconfined') {
    securityContext.appArmorProfile = { type: 'Unconfined' };
  }
  const fetchSecurity = restrictedSecurityContext(securityContext);
  const env = [...buildEnv(input), ...otlpEnv(options, job)];
  // Without a privileged pod there is no procfs to mount for RUN steps' sandboxes; rootless BuildKit's own flag.
  env.push({ name: 'BUILDKITD_FLAGS', value: '--oci-worker-no-process-sandbox' });
  if (ib.buildkitSnapshotter) env.push({ name: 'BUILDKIT_OCI_WORKER_SNAPSHOTTER', value: ib.buildkitSnapshotter });
  if (mode === 'buildkit-qemu') env.push({ name: 'IBS_USE_QEMU', value: 'true' }, ...qemuVmEnv(input.resources));
  return {
    ...commonPodSpec(input),
    securityContext: { fsGroup: ROOTLESS_UID },
    initContainers: contextInitContainers(image, input, fetchSecurity),
    containers: [
      {
        name: BUILD_CONTAINER,
        image,
        command: ['/usr/local/bin/ibs-build'],
        env,
        resources: containerResources(input.resources),
        securityContext,
        volumeMounts: [...commonMounts(), { name: 'buildkit-state', mountPath: '/home/user/.local/share/buildkit' }],
        terminationMessagePolicy: 'FallbackToLogsOnError',
      },
    ],
    volumes: volumes(job, [{ name: 'buildkit-state', emptyDir: {} }]),
  };
}

/** The VM's memory and its CPUs under KVM (infra/images/qemu/ibs-build-in-vm), from the build container's limits. */
function qemuVmEnv(resources: BuilderResources): V1EnvVar[] {
  const size = qemuVmSize(resources.limits);
  if (!size) throw new BuildFailedError('invalid_resources', `resources.limits.memory ${qemuMemoryAdvice(resources.limits.memory)}`);
  return [
    { name: 'IBS_VM_MEMORY', value: `${size.memoryMiB}M` },
    { name: 'IBS_VM_KVM_CPUS', value: String(size.kvmCpus) },
  ];
}

/** Kaniko: root inside the container, mapped to an unprivileged host user unless userNamespaceIsolation is off. */
function kanikoPodSpec(input: BuilderPodInput): NonNullable<V1Pod['spec']> {
  const { job, options } = input;
  const kaniko = options.imageBuilder.kaniko;
  const image = builderImageFor('kaniko', options);
  const securityContext = kanikoSecurityContext(kaniko.containerSecurityContext);
  const env = [...buildEnv(input), { name: 'IBS_ENGINE', value: 'kaniko' }, ...otlpEnv(options, job)];
  return {
    ...commonPodSpec(input),
    // Omitted (not false-negated) when isolation is off, so the cluster's default applies.
    hostUsers: kaniko.userNamespaceIsolation ? false : undefined,
    initContainers: contextInitContainers(image, input, securityContext),
    containers: [
      {
        name: BUILD_CONTAINER,
        image,
        command: ['/usr/local/bin/ibs-build'],
        env,
        resources: containerResources(input.resources),
        securityContext: kanikoSecurityContext(kaniko.containerSecurityContext),
        volumeMounts: commonMounts(),
        terminationMessagePolicy: 'FallbackToLogsOnError',
      },
    ],
    volumes: volumes(job),
  };
}

function otlpEnv(options: KubernetesExecutorOptions, job: BuildJob): V1EnvVar[] {
  const otlp = options.imageBuilder.otlp;
  if (!otlp.enabled) return [];
  const env: V1EnvVar[] = [];
  if (otlp.endpoint) env.push({ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: otlp.endpoint });
  if (otlp.metricExportIntervalMs !== undefined) env.push({ name: 'OTEL_METRIC_EXPORT_INTERVAL', value: String(otlp.metricExportIntervalMs) });
  if (otlp.logRecordScheduleDelayMs !== undefined) env.push({ name: 'OTEL_BLRP_SCHEDULE_DELAY', value: String(otlp.logRecordScheduleDelayMs) });
  // The build activity's span: buildctl and Kaniko continue the request's trace (W3C TRACEPARENT in the env).
  if (job.traceparent) env.push({ name: 'TRACEPARENT', value: job.traceparent });
  return env;
}

/** A scan pod: the gate for an image that needs no build (an uploaded archive, an image URI) on Kubernetes. */
export interface ScanPodInput {
  /** The pod's name (ibs-scan-…); its secret is `<name>-registry`, as a builder pod's. */
  name: string;
  buildId: string;
  options: KubernetesExecutorOptions;
  uploads: ScanUploads;
  timeoutSeconds: number;
  /** When the executor's sweep may delete it, should the worker that made it go away. */
  expiresAt: Date;
  allowSelfSignedCerts?: boolean;
}

/** Key of a scan pod's secret holding the presigned URL its init container downloads the image archive from. */
export const SCAN_IMAGE_URL_KEY = 'scan-image-url';
const FETCH_IMAGE_CONTAINER = 'fetch-image';

/**
 * The scan pod: an init container of the image-builder image (rootless, no privileges) downloads image.tar from a
 * presigned URL (with the image's busybox), the gate-tools init container fills the tools volume as in a gated
 * builder pod, then the gate's scanner container runs as there and uploads the report. Pod Security `restricted`
 * admits it.
 */
export function scanPodFor(input: ScanPodInput): V1Pod {
  const { options } = input;
  const secretName = `${input.name}-registry`;
  const securityContext = restrictedSecurityContext();
  const image = builderImageFor('buildkit-rootless', options);
  const fetchImage: V1Container = {
    name: FETCH_IMAGE_CONTAINER,
    image,
    command: ['/bin/sh', '-c', [
      'set -e',
      'insecure=""; [ "$IBS_ALLOW_SELF_SIGNED_CERTS" != true ] || insecure=--no-check-certificate',
      `wget -q $insecure -O ${SHARED_DIR}/${IMAGE_ARCHIVE} "$IBS_IMAGE_URL" || { echo "[ibs] the image archive could not be downloaded from object storage" >&2; exit 1; }`,
    ].join('\n')],
    env: [
      { name: 'IBS_IMAGE_URL', valueFrom: { secretKeyRef: { name: secretName, key: SCAN_IMAGE_URL_KEY } } },
      { name: 'IBS_ALLOW_SELF_SIGNED_CERTS', value: String(input.allowSelfSignedCerts ?? false) },
    ],
    resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    securityContext,
    volumeMounts: [{ name: 'shared', mountPath: SHARED_DIR }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      namespace: options.namespace,
      // The builder pods' component, so the chart's builder NetworkPolicy holds the scanner to the same egress.
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: 'image-builder', [LABELS.scan]: 'true', [LABELS.buildId]: labelValue(input.buildId) },
      annotations: { ...options.podAnnotations, [EXPIRES_AT_ANNOTATION]: input.expiresAt.toISOString() },
    },
    spec: {
      restartPolicy: 'Never',
      activeDeadlineSeconds: input.timeoutSeconds + 60,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      serviceAccountName: options.serviceAccountName,
      imagePullSecrets: imagePullSecretsOf(options),
      securityContext: { fsGroup: ROOTLESS_UID, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      initContainers: [fetchImage, gateToolsContainer(image, securityContext)],
      containers: [scannerContainer(input.uploads, secretName, securityContext, input.allowSelfSignedCerts)],
      volumes: [{ name: 'shared', emptyDir: {} }, { name: 'scanner-tmp', emptyDir: {} }, gateToolsVolume()],
    },
  };
}
