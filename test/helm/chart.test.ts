/**
 * The chart against the operator documentation: every values snippet of the spec (kept as chart-testing values in
 * infra/helm/build-service/ci/) renders both at the top level and under the `build-service:` key of an umbrella
 * chart, and the service's containers end up with the environment, and so the configuration, the snippet asks for.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { apiSettingsOf } from '../../api/settings';
import { policySettingsOf } from '../../api/builds/policy';
import { loadConfig, type Config } from '../../lib/config';
import { builderImageFor, builderPodFor, resolveKubernetesOptions } from '../../lib/executors/kubernetes';
import { kubernetesSettingsFrom } from '../../worker/kubernetes-settings';
import {
  ciDir,
  containerOf,
  find,
  plainEnv,
  chartDir,
  RELEASE,
  renderChart,
  run,
  renderUmbrella,
  resolveEnv,
  secretData,
  underBuildServiceKey,
  type Manifest,
} from './render';
import { scratchDir } from '../support/scratch';

const FULLNAME = `${RELEASE}-build-service`;
const values = (name: string) => join(ciDir, `${name}-values.yaml`);

/** Database settings an operator always supplies; the snippets are about everything else. */
const database = { POSTGRES_HOST: 'postgres', POSTGRES_USER: 'ibs', POSTGRES_PASSWORD: 'pg-password', POSTGRES_DB: 'ibs' };

function rendered(options: Parameters<typeof renderChart>[0] = {}) {
  const manifests = renderChart(options);
  const { container } = containerOf(manifests, `${FULLNAME}-worker`);
  const env = resolveEnv(manifests, container);
  return { manifests, env, config: (): Config => loadConfig({ ...database, ...plainEnv(env) }) };
}

const snippet = (name: string, extra: Parameters<typeof renderChart>[0] = {}) => rendered({ ...extra, valuesFiles: [values(name), ...(extra.valuesFiles ?? [])] });

/**
 * What an operator puts where a snippet of the spec has a placeholder (`<your_tenant_id>`, `<raw_service_account_json>`):
 * start-up validates these values, so the placeholders themselves are refused (tested below).
 */
function operatorValues(file: string): string[] {
  const filled: Record<string, Record<string, string>> = {
    'acr-values.yaml': { AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47' },
    'gcr-values.yaml': {
      DOCKERHUB_PASSWORD: JSON.stringify({ type: 'service_account', client_email: 'ibs@project.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\\n' }),
    },
  };
  const secret = filled[file];
  if (!secret) return [];
  const path = join(scratchDir('ibs-helm-'), 'operator-values.yaml');
  writeFileSync(path, stringify({ buildService: { envApp: { secret } } }));
  return [path];
}

describe('every values snippet of the spec', () => {
  const files = readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml')).sort();

  it('is kept as a chart-testing values file (18 snippets)', () => {
    expect(files).toHaveLength(18);
  });

  it.each(files)('%s renders the same manifests at the top level and under build-service: in an umbrella chart', (file) => {
    const top = renderChart({ valuesFiles: [join(ciDir, file)] });
    const nested = renderUmbrella({ valuesFiles: [underBuildServiceKey(join(ciDir, file))] });
    expect(top.length).toBeGreaterThanOrEqual(8);
    expect(nested).toEqual(top);
  });

  it.each(files)('%s passes helm lint --strict', (file) => {
    expect(run(['lint', '--strict', chartDir, '-f', join(ciDir, file)])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it.each(files)('%s gives the service a configuration that loads (placeholders filled in as an operator would)', (file) => {
    expect(() => rendered({ valuesFiles: [join(ciDir, file), ...operatorValues(file)] }).config()).not.toThrow();
  });

  it.each([
    ['acr-values.yaml', /AZURE_TENANT_ID must be a tenant id/],
    ['gcr-values.yaml', /DOCKERHUB_PASSWORD must be the raw JSON of the service-account key file/],
  ])('%s with its placeholders left in stops start-up naming the variable', (file, message) => {
    expect(() => rendered({ valuesFiles: [join(ciDir, file)] }).config()).toThrow(message);
  });
});

describe('chart defaults', () => {
  it('equal the defaults of the spec and of lib/config', () => {
    const fromChart = rendered().config();
    const fromCode = loadConfig({ ...database });
    for (const path of ['imageBuilder.resources', 'imageBuilder.securityContext', 'imageBuilder.useQemu', 'imageBuilder.name', 'imageBuilder.podRetentionSeconds', 'kaniko.containerSecurityContext', 'kaniko.userNamespaceIsolation', 'imageScanner.resources', 'imageScanner.enabled', 'otlp.enabled', 'pullCredentials', 'policy', 'signing', 'storage.bucket', 'registry.disableHttps', 'registry.allowSelfSignedCerts', 'postgres.port', 'build.defaultEngine', 'build.allowedEngines', 'build.slots', 'build.maxUnfinishedPerConsumer']) {
      const get = (c: Config) => path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], c);
      expect(get(fromChart), path).toEqual(get(fromCode));
    }
    expect(fromChart.imageBuilder.resources).toEqual({ requests: { cpu: '1', memory: '1G', ephemeralStorage: '1G' }, limits: { cpu: '1', memory: '1G', ephemeralStorage: '100G' } });
    expect(fromChart.imageScanner.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } });
    expect(fromChart.pullCredentials.mountImagePullSecrets).toBe(true);
    expect(fromChart.storage.bucket).toBe('data');
  });

  it('runs the API and the worker from the service image with their commands', () => {
    const manifests = renderChart({ set: ['image.registry=mirror.example', 'image.tag=1.2.3'] });
    const api = containerOf(manifests, `${FULLNAME}-api`).container;
    const worker = containerOf(manifests, `${FULLNAME}-worker`).container;
    expect(api.command).toEqual(['node', '--max-semi-space-size=4', 'dist/api/main.js']);
    expect(worker.command).toEqual(['node', 'dist/worker/main.js']);
    expect(api.image).toBe('mirror.example/datarobot/image-build-service:1.2.3');
    expect(worker.image).toBe(api.image);
    expect(find(manifests, 'Service', FULLNAME)).toMatchObject({ spec: { ports: [{ port: 8080, targetPort: 'http' }] } });
    const config = loadConfig({ ...database, ...plainEnv(resolveEnv(manifests, worker)) });
    expect(config.imageBuilder.image).toBe('mirror.example/datarobot/image-builder:1.2.3');
    expect(config.kaniko.image).toBe('mirror.example/datarobot/image-builder:1.2.3-kaniko-image');
  });

  it("probes the worker on the port its configuration makes it listen on, with metrics on or off", () => {
    for (const metrics of ['true', 'false']) {
      const { manifests, config } = rendered({ set: [`buildService.metrics.enabled=${metrics}`] });
      const worker = containerOf(manifests, `${FULLNAME}-worker`).container as unknown as {
        ports: { name: string; containerPort: number }[];
        readinessProbe: { httpGet: { path: string; port: string } };
        livenessProbe: { httpGet: { path: string; port: string }; periodSeconds: number; failureThreshold: number };
      };
      const { host, port } = config().telemetry.workerMetrics;
      expect(host, `metrics ${metrics}`).toBe('0.0.0.0');
      expect(worker.ports).toEqual([{ name: 'http', containerPort: port }]);
      expect(worker.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(worker.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      // Two minutes without an answer before a restart cuts running steps short.
      expect(worker.livenessProbe.periodSeconds * worker.livenessProbe.failureThreshold).toBe(120);
    }
  });

  it('gives the API its shutdown delay, and a grace period that covers it, its drain and its last workflow starts', () => {
    for (const [set, delay] of [[[], 5], [['buildService.api.shutdownDelaySeconds=0'], 0], [['buildService.api.shutdownDelaySeconds=15'], 15]] as const) {
      const manifests = renderChart({ set: [...set] });
      const { container, pod } = containerOf(manifests, `${FULLNAME}-api`);
      expect(loadConfig({ ...database, ...plainEnv(resolveEnv(manifests, container)) }).api.shutdownDelaySeconds).toBe(delay);
      // The delay, the drain's 20 s (SHUTDOWN_DRAIN_MS) and the 5 s of starts, with 5 s to close.
      expect(pod.terminationGracePeriodSeconds).toBe(delay + 20 + 5 + 5);
      expect(containerOf(manifests, `${FULLNAME}-worker`).pod.terminationGracePeriodSeconds).toBeUndefined();
    }
  });

  it('runs every build in a builder pod: the worker uses the kubernetes executor with the in-cluster configuration', () => {
    const config = rendered().config();
    expect(config.executor).toMatchObject({ type: 'kubernetes', kubeconfig: undefined });
    const settings = kubernetesSettingsFrom(config);
    expect(settings).toMatchObject({ namespace: 'ibs', kubeconfigPath: undefined });
    expect(builderImageFor('buildkit-rootless', resolveKubernetesOptions(settings))).toBe('docker.io/datarobot/image-builder:0.1.0');
  });

  it('lets the worker do in the build namespace exactly what the kubernetes executor calls, patch (pod retention) included', () => {
    const manifests = renderChart({ set: ['imageBuilder.namespace=ibs-builds'] });
    const role = find(manifests, 'Role', `${FULLNAME}-builder`) as unknown as { metadata: { namespace: string }; rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };
    expect(role.metadata.namespace).toBe('ibs-builds');
    // test/helm/rbac.test.ts runs the executor with these rules; this pins them so that a change is deliberate.
    expect(role.rules.map((r) => ({ ...r, verbs: [...r.verbs].sort() }))).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'delete', 'get', 'update'] },
    ]);
    expect(find(manifests, 'RoleBinding', `${FULLNAME}-builder`)).toMatchObject({
      metadata: { namespace: 'ibs-builds' },
      subjects: [{ kind: 'ServiceAccount', name: FULLNAME, namespace: 'ibs' }],
    });
    expect(rendered({ set: ['imageBuilder.namespace=ibs-builds'] }).config().imageBuilder.namespace).toBe('ibs-builds');
  });

  it('renders no SCC binding, pull credential secret or ExternalSecret unless asked (and the builder NetworkPolicy)', () => {
    const kinds = renderChart().map((m: Manifest) => `${m.kind}/${m.metadata.name}`);
    expect(kinds.sort()).toEqual([
      `ConfigMap/${FULLNAME}-config`, `Deployment/${FULLNAME}-api`, `Deployment/${FULLNAME}-worker`,
      `NetworkPolicy/${FULLNAME}-builder-egress`, `Pod/${FULLNAME}-build-test`, `Role/${FULLNAME}-builder`,
      `RoleBinding/${FULLNAME}-builder`, `Secret/${FULLNAME}-env`, `Secret/${FULLNAME}-worker-env`, `Service/${FULLNAME}`, `Service/${FULLNAME}-worker-metrics`,
      `ServiceAccount/${FULLNAME}`, `ServiceAccount/${FULLNAME}-api`,
    ]);
  });

  it('renders the helm test pod as a test hook that sends the API token of tests.tokenSecret only when one is named', () => {
    const testPod = (set: string[] = []) => renderChart({ set }).find((m) => m.kind === 'Pod') as
      (Manifest & { spec: { containers: { env: { name: string; value?: string; valueFrom?: unknown }[] }[] } }) | undefined;
    const plain = testPod();
    expect(plain?.metadata.annotations?.['helm.sh/hook']).toBe('test');
    const env = plain?.spec.containers[0]?.env ?? [];
    expect(env.map((e) => e.name)).not.toContain('IBS_API_TOKEN');
    expect(env.find((e) => e.name === 'IBS_API_URL')?.value).toBe(`http://${FULLNAME}.ibs.svc:8080`);
    expect(env.find((e) => e.name === 'IBS_TEST_IMAGE')?.value).toBe('docker.io/datarobot/build-service-helm-test:ibs-1');
    const withToken = testPod(['tests.tokenSecret.name=api-tokens', 'tests.tokenSecret.key=helm-test']);
    expect(withToken?.spec.containers[0]?.env.find((e) => e.name === 'IBS_API_TOKEN')?.valueFrom)
      .toEqual({ secretKeyRef: { name: 'api-tokens', key: 'helm-test' } });
    expect(testPod(['tests.enabled=false'])).toBeUndefined();
  });
});

/** The builder pod the worker with this configuration would create, as the worker wires it (worker/dependencies.ts). */
function builderPodOf(config: Config) {
  const options = resolveKubernetesOptions(kubernetesSettingsFrom(config));
  return builderPodFor({
    job: { buildId: 'b-1', contextKey: 'contexts/b-1.tar.gz', dockerfile: 'Dockerfile', repository: 'registry.example/team/app', buildArgs: {}, labels: {}, platforms: ['linux/amd64'], engine: config.build.defaultEngine, timeoutSeconds: 600 },
    options,
    resources: options.imageBuilder.resources,
    insecureRegistry: config.registry.disableHttps,
    allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
  });
}

describe('ALLOW_SELF_SIGNED_CERTS', () => {
  const builderPod = (set: string[]) => builderPodOf(rendered({ set }).config());
  const envOf = (container: { env?: Array<{ name: string; value?: string }> } | undefined) =>
    Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));

  it.each([
    ['off by default', [], 'false'],
    ['on', ['buildService.envApp.secret.ALLOW_SELF_SIGNED_CERTS=true'], 'true'],
  ])('reaches the context fetcher and the build container of every engine (%s)', (_case, set, expected) => {
    for (const engine of [[], ['imageBuilder.useQemu=true'], ['imageBuilder.buildEngine=kaniko']]) {
      const pod = builderPod([...set, ...engine]);
      expect(envOf(pod.spec?.initContainers?.[0]).IBS_ALLOW_SELF_SIGNED_CERTS, engine.join()).toBe(expected);
      expect(envOf(pod.spec?.containers[0]).IBS_ALLOW_SELF_SIGNED_CERTS, engine.join()).toBe(expected);
    }
  });
});

describe("the API's public URL (API_PUBLIC_URL, the base of every build's links)", () => {
  const apiEnv = (options: Parameters<typeof renderChart>[0]) => {
    const manifests = renderChart(options);
    return resolveEnv(manifests, containerOf(manifests, `${FULLNAME}-api`).container);
  };
  const publicUrl = (options: Parameters<typeof renderChart>[0] = {}) => apiSettingsOf(loadConfig({ ...database, ...plainEnv(apiEnv(options)) })).publicUrl;

  it("is the API Service's in-cluster URL by default, not the address the API binds", () => {
    expect(publicUrl()).toBe(`http://${FULLNAME}.ibs.svc:8080`);
    expect(publicUrl({ namespace: 'platform', set: ['buildService.service.port=9000'] })).toBe(`http://${FULLNAME}.platform.svc:9000`);
    expect(find(renderChart(), 'Service', FULLNAME)).toMatchObject({ spec: { ports: [{ port: 8080 }] } });
  });

  it('takes buildService.api.publicUrl, and refuses one that is not an http(s) URL', () => {
    expect(publicUrl({ set: ['buildService.api.publicUrl=https://ibs.example.com/'] })).toBe('https://ibs.example.com');
    expect(() => renderChart({ set: ['buildService.api.publicUrl=ibs.example.com'] })).toThrow(/\/buildService\/api\/publicUrl/);
  });

  it('is overridden by buildService.env, envApp.secret and envApp.externalsecret', () => {
    const set = ['buildService.api.publicUrl=https://ibs.example.com'];
    expect(publicUrl({ set })).toBe('https://ibs.example.com');
    expect(publicUrl({ set: [...set, 'buildService.env.API_PUBLIC_URL=https://from-env.example'] })).toBe('https://from-env.example');
    expect(publicUrl({ set: [...set, 'buildService.envApp.secret.API_PUBLIC_URL=https://from-secret.example'] })).toBe('https://from-secret.example');
    expect(apiEnv({ set: [...set, 'buildService.envApp.externalsecret.API_PUBLIC_URL.name=ibs-url', 'buildService.envApp.externalsecret.API_PUBLIC_URL.key=url'] }).API_PUBLIC_URL)
      .toEqual({ secretKeyRef: { name: 'ibs-url', key: 'url' } });
  });
});

describe('springProfile', () => {
  it('is handed over as SPRING_PROFILES_ACTIVE (GKE example)', () => {
    const { env, config } = snippet('gke-spring-profile');
    expect(env.SPRING_PROFILES_ACTIVE).toBe('aws,private_registry,gcs');
    expect(config().springProfile).toMatchObject({ profile: 'aws,private_registry,gcs', source: 'configured' });
    expect(config().storage.type).toBe('gcs');
  });

  it('is left to the service when not set, which derives aws,private_registry,s3', () => {
    const { env, config } = rendered();
    expect(env).not.toHaveProperty('SPRING_PROFILES_ACTIVE');
    expect(config().springProfile).toMatchObject({ profile: 'aws,private_registry,s3', source: 'derived' });
  });

  it('is derived as rhos on a cluster that serves the OpenShift SCC API', () => {
    const { env, config } = rendered({ apiVersions: ['security.openshift.io/v1'] });
    expect(env.IBS_CLUSTER_OPENSHIFT).toBe('true');
    expect(config().springProfile.profile).toBe('rhos,private_registry,s3');
  });
});

describe('registries', () => {
  it('passes the ACR service principal and tenant', () => {
    const { manifests, config } = snippet('acr');
    expect(secretData(find(manifests, 'Secret', `${FULLNAME}-env`))).toMatchObject({
      DOCKERHUB_USERNAME: '<service_principal_appId>',
      DOCKERHUB_PASSWORD: '<access-token> or <service_principal_password>',
      AZURE_TENANT_ID: '<your_tenant_id>',
    });
    const filled = snippet('acr', { valuesFiles: operatorValues('acr-values.yaml') }).config();
    expect(filled.springProfile.profile).toBe('azure,acr,s3');
    expect(filled.registry).toMatchObject({ username: '<service_principal_appId>', acr: { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47' } });
    expect(config).toThrow(/AZURE_TENANT_ID/);
  });

  it('passes the GCR JSON key user with the google cluster type', () => {
    const { env } = snippet('gcr');
    expect(plainEnv(env)).toMatchObject({ DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: '<raw_service_account_json>' });
    const filled = snippet('gcr', { valuesFiles: operatorValues('gcr-values.yaml') }).config();
    expect(filled.springProfile.profile).toBe('gcp,gcr,s3');
    expect(filled.registry.username).toBe('_json_key');
  });

  it('keeps secrets out of the ConfigMap', () => {
    const { manifests } = snippet('acr');
    const configMap = JSON.stringify(find(manifests, 'ConfigMap', `${FULLNAME}-config`));
    expect(configMap).not.toContain('service_principal_password');
    expect(configMap).not.toContain('DOCKERHUB_PASSWORD');
  });
});

describe('envApp', () => {
  it('sets BUILDKIT_OCI_WORKER_SNAPSHOTTER from envApp.secret', () => {
    const { env, config } = snippet('buildkit-overlayfs');
    expect(env.BUILDKIT_OCI_WORKER_SNAPSHOTTER).toBe('overlayfs');
    expect(config().imageBuilder.ociWorkerSnapshotter).toBe('overlayfs');
  });

  it('sets LOGS_BUCKET', () => {
    expect(snippet('logs-bucket').config().storage.bucket).toBe('your-s3-bucket-name');
  });

  it('configures notation signing', () => {
    expect(snippet('image-signing').config().signing).toEqual({
      type: 'notation',
      profile: 'arn:aws:signer:us-east-1:1234567890:/signing-profiles/your-signing-profiles',
      plugin: 'com.amazonaws.signer.notation.plugin',
      region: 'us-east-1',
      // The notation CLI and the AWS Signer trust store by their defaults (docs/configuration.md).
      notationPath: 'notation',
      trustStore: 'signingAuthority:aws-signer-ts',
      // On the writable /tmp volume (the root filesystem is read-only); the plugins are linked in from the image's
      // ~/.config/notation by default.
      configHome: '/tmp/notation',
      defaultsDir: undefined,
    });
  });

  it("mounts the notation trust store and local keys the operator's Secrets hold into the worker only", () => {
    const { manifests, config } = snippet('image-signing', { set: [
      'buildService.notation.trustStore=signingAuthority:aws-signer-ts',
      'buildService.notation.trustStoreSecret=aws-signer-root',
      'buildService.notation.signingKeysSecret=notation-keys',
    ] });
    expect((config().signing as { trustStore: string }).trustStore).toBe('signingAuthority:aws-signer-ts');
    const worker = containerOf(manifests, `${FULLNAME}-worker`);
    const mounts = (worker.container as unknown as { volumeMounts: { name: string; mountPath: string; subPath?: string }[] }).volumeMounts;
    // Under the image's notation folder (NOTATION_DEFAULTS_DIR's default), which the worker links into NOTATION_CONFIG_HOME.
    expect(mounts).toEqual(expect.arrayContaining([
      { name: 'notation-trust-store', mountPath: '/home/node/.config/notation/truststore/x509/signingAuthority/aws-signer-ts', readOnly: true },
      { name: 'notation-signing-keys', mountPath: '/home/node/.config/notation/localkeys', readOnly: true },
      { name: 'notation-signing-keys', mountPath: '/home/node/.config/notation/signingkeys.json', subPath: 'signingkeys.json', readOnly: true },
    ]));
    expect(worker.pod.volumes).toEqual(expect.arrayContaining([
      { name: 'notation-trust-store', secret: expect.objectContaining({ secretName: 'aws-signer-root' }) },
      { name: 'notation-signing-keys', secret: expect.objectContaining({ secretName: 'notation-keys' }) },
    ]));
    const api = containerOf(manifests, `${FULLNAME}-api`);
    expect(JSON.stringify(api.pod.volumes)).not.toContain('notation');
  });

  it('refuses a notation trust store Secret without the trust store it fills, or one not named <type>:<name>', () => {
    expect(() => renderChart({ set: ['buildService.notation.trustStoreSecret=aws-signer-root'] })).toThrow(/buildService.notation.trustStore .* is required with buildService.notation.trustStoreSecret/);
    expect(() => renderChart({ set: ['buildService.notation.trustStoreSecret=x', 'buildService.notation.trustStore=../../etc'] })).toThrow(/must be <type>:<name> with type ca, signingAuthority or tsa/);
  });

  it('takes externalsecret keys from the named secret, overriding the same keys of envApp.secret', () => {
    const { manifests, env } = snippet('external-secret', { set: ['buildService.envApp.secret.POSTGRES_USER=from-values'] });
    expect(env.POSTGRES_USER).toEqual({ secretKeyRef: { name: 'external-postgres-secret', key: 'username' } });
    expect(env.POSTGRES_PASSWORD).toEqual({ secretKeyRef: { name: 'external-postgres-secret', key: 'password' } });
    expect(secretData(find(manifests, 'Secret', `${FULLNAME}-env`))).not.toHaveProperty('POSTGRES_USER');
    for (const deployment of ['api', 'worker']) {
      expect(resolveEnv(manifests, containerOf(manifests, `${FULLNAME}-${deployment}`).container).POSTGRES_USER).toEqual(env.POSTGRES_USER);
    }
  });

  it('lets envApp.secret override a setting the chart derives', () => {
    const { env } = rendered({ set: ['buildService.envApp.secret.IMAGE_BUILDER_NAMESPACE=elsewhere'] });
    expect(env.IMAGE_BUILDER_NAMESPACE).toBe('elsewhere');
  });
});

describe('core.config_env_vars, where the spec configures the base-image lists and the dependency mirrors', () => {
  const coreValues = () => {
    const path = join(scratchDir('ibs-helm-'), 'core-values.yaml');
    writeFileSync(path, stringify({ core: { config_env_vars: {
      EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST: 'docker.io/library/*,registry.example.com/*',
      EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: 'docker.io/datarobot/*',
      CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: 'https://artifactory.example.com/api/pypi/simple',
      CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST: 'artifactory.example.com',
      CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: 'http://proxy.example.com:3128',
      CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR: 'https://cran.example.com',
    } } }));
    return path;
  };

  it('reaches the API and the worker, at the top level and under build-service: in an umbrella chart', () => {
    const file = coreValues();
    const top = renderChart({ valuesFiles: [file] });
    expect(renderUmbrella({ valuesFiles: [underBuildServiceKey(file)] })).toEqual(top);
    for (const component of ['api', 'worker']) {
      const config = loadConfig({ ...database, ...plainEnv(resolveEnv(top, containerOf(top, `${FULLNAME}-${component}`).container)) });
      expect(config.policy, component).toMatchObject({ allowlist: ['docker.io/library/*', 'registry.example.com/*'], denylist: ['docker.io/datarobot/*'] });
      expect(config.dependencies, component).toEqual({
        pythonIndex: 'https://artifactory.example.com/api/pypi/simple', pythonTrustedHost: 'artifactory.example.com',
        httpProxy: 'http://proxy.example.com:3128', cranMirror: 'https://cran.example.com',
      });
    }
    expect(run(['lint', '--strict', chartDir, '-f', file])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('gives way to buildService.env and envApp.secret for a variable they set too', () => {
    const { env } = rendered({ valuesFiles: [coreValues()], set: [
      'buildService.env.CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR=https://cran.other.example',
      'buildService.envApp.secret.CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY=http://user:pw@proxy.example.com:3128',
    ] });
    expect(env.CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR).toBe('https://cran.other.example');
    expect(env.CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY).toBe('http://user:pw@proxy.example.com:3128');
    expect(env.CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX).toBe('https://artifactory.example.com/api/pypi/simple');
  });

  it('writes a variable the chart derives once, with the extra value, when buildService.env or core sets it too', () => {
    const set = ['buildService.env.LOG_LEVEL=debug', 'core.config_env_vars.IMAGE_BUILDER_BUILD_ENGINE=kaniko', 'core.config_env_vars.KANIKO_IMAGE=mirror.example/kaniko:1', 'buildService.env.BUILD_LOG_FLUSH_INTERVAL_MS=250'];
    // The raw text, as tools that refuse a duplicate key (kubectl apply, Argo CD) read it.
    const text = run(['template', RELEASE, chartDir, '--namespace', 'ibs', ...set.flatMap((value) => ['--set', value])]);
    const configMap = text.split(/^---$/m).find((doc) => /kind: ConfigMap/.test(doc) && doc.includes(`name: ${FULLNAME}-config`)) ?? '';
    expect(configMap.match(/^ {2}LOG_LEVEL:/gm)).toHaveLength(1);
    expect(configMap.match(/^ {2}IMAGE_BUILDER_BUILD_ENGINE:/gm)).toHaveLength(1);
    const { env, config } = rendered({ set });
    expect(env).toMatchObject({ LOG_LEVEL: 'debug', IMAGE_BUILDER_BUILD_ENGINE: 'kaniko', BUILD_LOG_FLUSH_INTERVAL_MS: '250' });
    expect(config().imageBuilder.buildEngine).toBe('kaniko');
  });
});

describe('image pull credentials', () => {
  it('does not mount the global pull secrets when imagePullSecrets.mount is false', () => {
    expect(snippet('no-mount-image-pull-secrets').config().pullCredentials.mountImagePullSecrets).toBe(false);
  });

  it('turns plain entries into a dockerconfigjson Secret and lists every credentials secret', () => {
    const { manifests, config } = snippet('image-pull-credentials');
    const secret = find(manifests, 'Secret', `${FULLNAME}-image-builder-pull-credentials`) as Manifest & { type: string };
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret.metadata.namespace).toBe('ibs');
    const auths = JSON.parse(secretData(secret)['.dockerconfigjson']!).auths;
    expect(auths['https://index.docker.io/v1/']).toEqual({ username: 'dockerhub_user1', password: 'dockerhub_password', auth: Buffer.from('dockerhub_user1:dockerhub_password').toString('base64') });
    expect(auths['private-registry.example']).toEqual({ username: 'user1', password: '', auth: Buffer.from('user1:').toString('base64') });
    // The externalSecret entry needs buildService.secretManager.enabled, which this snippet leaves off.
    expect(manifests.filter((m) => m.kind === 'ExternalSecret')).toEqual([]);
    expect(config().pullCredentials.credentialsSecrets).toEqual([`${FULLNAME}-image-builder-pull-credentials`, 'dockerhub-image-pull-secret-read-only']);
  });

  it('creates the ExternalSecret and lists it when the secret manager is enabled', () => {
    const { manifests, config } = snippet('image-pull-credentials', { set: ['buildService.secretManager.enabled=true'] });
    expect(find(manifests, 'ExternalSecret', 'dockerhub-image-pull-secret-external')).toMatchObject({
      apiVersion: 'external-secrets.io/v1',
      spec: {
        target: { name: 'dockerhub-image-pull-secret-external', template: { type: 'kubernetes.io/dockerconfigjson' } },
        data: [{ secretKey: '.dockerconfigjson', remoteRef: { key: '/ibs/image-builder-pull-credentials', property: 'dockerconfigjson' } }],
      },
    });
    expect(config().pullCredentials.credentialsSecrets).toEqual([
      `${FULLNAME}-image-builder-pull-credentials`, 'dockerhub-image-pull-secret-read-only', 'dockerhub-image-pull-secret-external',
    ]);
  });

  it('passes the wildcard-credentials lists', () => {
    const config = rendered({ set: ['imageBuilder.imagePullSecretsToMount={my-registry-creds}', 'imageBuilder.wildcardRegistryHosts={repo1.myregistry.com,repo2.myregistry.com}'] }).config();
    expect(config.pullCredentials.secretsToMount).toEqual(['my-registry-creds']);
    expect(config.pullCredentials.wildcardRegistryHosts).toEqual(['repo1.myregistry.com', 'repo2.myregistry.com']);
  });

  it('gives the service pods the global pull secrets and lists them for the builders', () => {
    const { manifests, config } = rendered({ set: ['imagePullSecrets.names={global-pull}'] });
    expect(containerOf(manifests, `${FULLNAME}-api`).pod.imagePullSecrets).toEqual([{ name: 'global-pull' }]);
    expect(config().pullCredentials.imagePullSecrets).toEqual(['global-pull']);
  });
});

describe('Image Builder pods', () => {
  it('take the larger resources', () => {
    expect(snippet('resources').config().imageBuilder.resources).toEqual({
      requests: { cpu: '1', memory: '4G', ephemeralStorage: '1G' },
      limits: { cpu: '2', memory: '4G', ephemeralStorage: '100G' },
    });
  });

  it('take the rootless security context with no capabilities added', () => {
    expect(snippet('rootless-security-context').config().imageBuilder.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      seccompProfileType: 'RuntimeDefault',
      seLinuxType: '',
      capabilities: { drop: ['ALL'], add: [] },
    });
  });

  it('run in QEMU with the QEMU image and more resources', () => {
    const config = snippet('qemu').config();
    expect(config.imageBuilder.useQemu).toBe(true);
    expect(config.imageBuilder.image).toBe('docker.io/datarobot/image-builder:0.1.0-qemu-image');
    expect(config.imageBuilder.resources).toEqual({ requests: { cpu: '2', memory: '4G', ephemeralStorage: '1G' }, limits: { cpu: '4', memory: '8G', ephemeralStorage: '100G' } });
  });

  it('in QEMU mode take the restricted security context unless imageBuilder.securityContext sets a field, in the configuration and the pod', () => {
    const buildContainer = (config: Config) => builderPodOf(config).spec?.containers[0]?.securityContext;
    const qemu = snippet('qemu').config();
    expect(qemu.imageBuilder.securityContext).toEqual({ allowPrivilegeEscalation: false, seccompProfileType: 'RuntimeDefault', seLinuxType: '', capabilities: { drop: ['ALL'], add: [] } });
    expect(buildContainer(qemu)).toMatchObject({ allowPrivilegeEscalation: false, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' }, capabilities: { drop: ['ALL'], add: undefined } });
    expect(buildContainer(qemu)).not.toHaveProperty('appArmorProfile');
    // Without useQemu the chart's defaults are still rootless BuildKit's.
    const rootless = rendered().config();
    expect(rootless.imageBuilder.securityContext).toEqual({ allowPrivilegeEscalation: true, seccompProfileType: 'Unconfined', seLinuxType: '', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] } });
    expect(buildContainer(rootless)).toMatchObject({ allowPrivilegeEscalation: true, seccompProfile: { type: 'Unconfined' }, capabilities: { add: ['SETUID', 'SETGID'] } });
    // A field the operator sets wins in QEMU mode, an empty list included; the others keep the QEMU defaults.
    const explicit = join(scratchDir('ibs-helm-'), 'security-context.yaml');
    writeFileSync(explicit, stringify({ imageBuilder: { securityContext: { allowPrivilegeEscalation: true, seLinuxType: 'container_t', capabilities: { drop: [], add: ['SETUID'] } } } }));
    const mixed = snippet('qemu', { valuesFiles: [explicit] }).config();
    expect(mixed.imageBuilder.securityContext).toEqual({ allowPrivilegeEscalation: true, seccompProfileType: 'RuntimeDefault', seLinuxType: 'container_t', capabilities: { drop: [], add: ['SETUID'] } });
    expect(buildContainer(mixed)).toMatchObject({ allowPrivilegeEscalation: true, seccompProfile: { type: 'RuntimeDefault' }, seLinuxOptions: { type: 'container_t' }, capabilities: { drop: [], add: ['SETUID'] } });
    // The spec's rootless snippet together with useQemu gives what it says.
    expect(snippet('qemu', { valuesFiles: [values('rootless-security-context')] }).config().imageBuilder.securityContext).toEqual(qemu.imageBuilder.securityContext);
  });

  it('stop the install when QEMU mode has too little memory for the VM beside QEMU, unless only Kaniko runs', () => {
    const qemu = (memory: string, ...more: string[]) => () => renderChart({ set: ['imageBuilder.useQemu=true', `imageBuilder.resources.limits.memory=${memory}`, ...more] });
    const tooLittle = /imageBuilder.resources.limits.memory \S+ is too little for imageBuilder.useQemu: .* set at least 888Mi/;
    for (const memory of ['768Mi', '887Mi', '930000000', '0.8G']) expect(qemu(memory), memory).toThrow(tooLittle);
    for (const memory of ['888Mi', '931000000', '0.9Gi', '1G', '8G']) expect(qemu(memory), memory).not.toThrow();
    // The chart reads the plain forms; any other quantity is left to the service's own start-up check.
    expect(rendered({ set: ['imageBuilder.useQemu=true', 'imageBuilder.resources.limits.memory=5e8'] }).config).toThrow(/888Mi/);
    expect(qemu('768Mi', 'imageBuilder.buildEngine=kaniko')).not.toThrow();
    expect(qemu('768Mi', 'imageBuilder.buildEngine=kaniko', 'imageBuilder.allowedEngines={kaniko,buildkit}')).toThrow(tooLittle);
    expect(() => renderChart({ set: ['imageBuilder.resources.limits.memory=768Mi'] })).not.toThrow();
  });

  it('may use the nonroot-v2 SCC on OpenShift', () => {
    const { manifests, config } = snippet('openshift-scc');
    expect(config().imageBuilder.scc).toBe('nonroot-v2');
    const role = find(manifests, 'ClusterRole', `${FULLNAME}-ibs-scc`);
    expect(role).toMatchObject({ rules: [{ apiGroups: ['security.openshift.io'], resources: ['securitycontextconstraints'], resourceNames: ['nonroot-v2'], verbs: ['use'] }] });
    // The API's pod runs in the same namespace and is admitted under the SCC as before; `use` grants no API access.
    expect(find(manifests, 'RoleBinding', `${FULLNAME}-scc`)).toMatchObject({
      roleRef: { kind: 'ClusterRole', name: `${FULLNAME}-ibs-scc` },
      subjects: [{ kind: 'ServiceAccount', name: FULLNAME, namespace: 'ibs' }, { kind: 'ServiceAccount', name: `${FULLNAME}-api`, namespace: 'ibs' }],
    });
    // In a build namespace of its own the binding concerns builder pods and the worker's account only.
    const apart = snippet('openshift-scc', { set: ['imageBuilder.namespace=ibs-builds'] }).manifests;
    expect(find(apart, 'RoleBinding', `${FULLNAME}-scc`)).toMatchObject({ subjects: [{ kind: 'ServiceAccount', name: FULLNAME, namespace: 'ibs' }] });
    expect((find(apart, 'RoleBinding', `${FULLNAME}-scc`) as unknown as { subjects: unknown[] }).subjects).toHaveLength(1);
  });
});

describe('Kaniko', () => {
  it('is selected with its derived image', () => {
    const config = snippet('kaniko').config();
    expect(config.build.defaultEngine).toBe('kaniko');
    expect(config.build.allowedEngines).toEqual(['kaniko']);
    expect(config.imageBuilder.buildEngine).toBe('kaniko');
    expect(config.kaniko.image).toBe('docker.io/datarobot/image-builder:0.1.0-kaniko-image');
    expect(config.kaniko.userNamespaceIsolation).toBe(true);
  });

  it('is an engine builds may name only where imageBuilder.allowedEngines lists it', () => {
    expect(rendered().config().build.allowedEngines).toEqual(['buildkit']);
    const config = rendered({ set: ['imageBuilder.allowedEngines={buildkit,kaniko}'] }).config();
    expect(config.build.defaultEngine).toBe('buildkit');
    expect(config.build.allowedEngines).toEqual(['buildkit', 'kaniko']);
  });

  it('takes an image override', () => {
    expect(snippet('kaniko', { set: ['imageBuilder.kaniko.image=other.example/kaniko:v1.23.2'] }).config().kaniko.image).toBe('other.example/kaniko:v1.23.2');
  });

  it('merges a containerSecurityContext override over the chart defaults', () => {
    expect(snippet('kaniko-security-context').config().kaniko.containerSecurityContext).toEqual({
      runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: false,
      seccompProfileType: 'RuntimeDefault', seLinuxType: 'container_t', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID', 'CHOWN', 'FOWNER'] },
    });
  });

  it('replaces a capabilities list as a whole', () => {
    const config = snippet('kaniko-security-context', { set: ['imageBuilder.kaniko.containerSecurityContext.capabilities.add={CHOWN}'] }).config();
    expect(config.kaniko.containerSecurityContext.capabilities).toEqual({ drop: ['ALL'], add: ['CHOWN'] });
  });

  it('exports OpenTelemetry to the collector', () => {
    const { env, config } = snippet('kaniko-otlp', { set: ['buildService.env.OTEL_METRIC_EXPORT_INTERVAL=30000', 'buildService.env.OTEL_BLRP_SCHEDULE_DELAY=500'] });
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://your-otel-collector:4318');
    expect(config().otlp).toEqual({ enabled: true, endpoint: 'http://your-otel-collector:4318', metricExportIntervalMs: 30000, logRecordScheduleDelayMs: 500 });
  });

  it('can turn user namespace isolation off', () => {
    expect(snippet('kaniko-no-user-namespaces').config().kaniko.userNamespaceIsolation).toBe(false);
  });
});

describe('image scanner', () => {
  it('is configured as the snippet says, with its env kept in the Secret', () => {
    const { manifests, config } = snippet('image-scanner');
    expect(config().imageScanner).toEqual({
      enabled: true,
      image: 'customer-registry.com/customer-scanner:v1.0.0',
      command: ['/bin/sh', '-c'],
      args: ['snyk container test --file=/shared/image.tar \\\n--severity-threshold=medium \\\n--json-file-output=/shared/scan-report.json \\\n|| exit 1\n'],
      env: { SNYK_TOKEN: 'customer-token-here', SNYK_CACHE_PATH: './shared/.snyk-cache' },
      reportUploadPath: 's3://customer-bucket/scan-reports',
      resources: { limits: { memory: '1Gi', cpu: '1000m' }, requests: { memory: '512Mi', cpu: '500m' } },
    });
    expect(JSON.stringify(find(manifests, 'ConfigMap', `${FULLNAME}-config`))).not.toContain('customer-token-here');
    expect(config().secrets).toContain('customer-token-here');
  });
});

describe('values the service could not use', () => {
  function refusal(set: string[]): string {
    try {
      renderChart({ set });
    } catch (err) {
      return String((err as { stderr?: string }).stderr ?? err);
    }
    throw new Error(`helm template accepted ${set.join(' ')}`);
  }

  it.each<[string, string[], RegExp]>([
    ['an unknown build engine', ['imageBuilder.buildEngine=docker'], /\/imageBuilder\/buildEngine.*buildkit, kaniko|\/imageBuilder\/buildEngine.*'buildkit', 'kaniko'/],
    ['an unknown allowed engine', ['imageBuilder.allowedEngines={buildkit,docker}'], /\/imageBuilder\/allowedEngines\/1/],
    ['a memory limit that is not a quantity', ['imageBuilder.resources.limits.memory=4 GB'], /\/imageBuilder\/resources\/limits\/memory/],
    ['useQemu that is not a boolean', ['imageBuilder.useQemu=yes'], /\/imageBuilder\/useQemu/],
    ['an unknown seccomp profile type', ['imageBuilder.kaniko.containerSecurityContext.seccompProfileType=runtime/default'], /seccompProfileType/],
    ['a lower-case capability', ['imageBuilder.securityContext.capabilities.add={setuid}'], /\/imageBuilder\/securityContext\/capabilities\/add\/0/],
    ['imagePullSecrets.mount that is not a boolean', ['imagePullSecrets.mount=maybe'], /\/imagePullSecrets\/mount/],
    ['a plain credential without user', ['imageBuilder.imagePullCredentials.plain[0].host=docker.io'], /\/imageBuilder\/imagePullCredentials\/plain\/0.*user/],
    ['an external secret without remoteRefKey', ['imageBuilder.imagePullCredentials.externalSecret[0].secretName=x', 'imageBuilder.imagePullCredentials.externalSecret[0].remoteRefProperty=p'], /remoteRefKey/],
    ['an externalsecret entry without key', ['buildService.envApp.externalsecret.POSTGRES_USER.name=pg'], /\/buildService\/envApp\/externalsecret\/POSTGRES_USER.*key/],
  ])('refuses %s at helm template time, naming the value', (_case, set, message) => {
    expect(refusal(set)).toMatch(message);
  });
});

/** The ServiceAccounts a Role, ClusterRole or SCC binding of the rendering names, with what it grants. */
function boundAccounts(manifests: Manifest[]): Array<{ binding: string; account: string; role: string }> {
  return manifests
    .filter((m) => m.kind === 'RoleBinding' || m.kind === 'ClusterRoleBinding')
    .flatMap((m) => {
      const { subjects, roleRef } = m as unknown as { subjects: Array<{ kind: string; name: string }>; roleRef: { kind: string; name: string } };
      return subjects.filter((s) => s.kind === 'ServiceAccount').map((s) => ({ binding: `${m.kind}/${m.metadata.name}`, account: s.name, role: `${roleRef.kind}/${roleRef.name}` }));
    });
}

/** Variables only the worker reads (the chart's build-service.workerOnlyVariable). */
const WORKER_ONLY = /^(IMAGE_BUILDER_SCANNER_ENV|IMAGE_SIGNER_TYPE|KUBECONFIG|NOTATION_.*)$/;
/** ConfigMap settings that merely accompany signing (NOTATION_CONFIG_HOME, NOTATION_TRUST_STORE): not secrets. */
const PLAIN_NOTATION = ['NOTATION_CONFIG_HOME', 'NOTATION_TRUST_STORE'];

/** What the API does with its configuration (api/main.ts): the parts it reads must not change with the split. */
function apiView(config: Config) {
  return {
    api: config.api, temporal: config.temporal, postgres: config.postgres, springProfile: config.springProfile, storage: config.storage,
    registry: config.registry, auth: config.auth, telemetry: config.telemetry, tracing: config.tracing,
    settings: apiSettingsOf(config), policy: policySettingsOf(config),
  };
}

describe('the API apart from the worker', () => {
  const files = readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml')).sort();

  it("runs the API under its own ServiceAccount, bound to no Role, with no token mounted; the worker's RBAC is unchanged", () => {
    const manifests = renderChart({ set: ['buildService.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/ibs'] });
    const api = containerOf(manifests, `${FULLNAME}-api`).pod;
    const worker = containerOf(manifests, `${FULLNAME}-worker`).pod;
    expect(api.serviceAccountName).toBe(`${FULLNAME}-api`);
    expect(api.automountServiceAccountToken).toBe(false);
    expect(JSON.stringify(api.volumes)).not.toContain('serviceAccountToken');
    expect(worker.serviceAccountName).toBe(FULLNAME);
    expect(worker).not.toHaveProperty('automountServiceAccountToken');
    expect(find(manifests, 'ServiceAccount', `${FULLNAME}-api`)).toMatchObject({
      automountServiceAccountToken: false,
      // The API reads object storage and the registry with the same cloud identity (IRSA) unless given its own.
      metadata: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/ibs' } },
    });
    expect(find(manifests, 'ServiceAccount', FULLNAME)).not.toHaveProperty('automountServiceAccountToken');
    expect(boundAccounts(manifests)).toEqual([{ binding: `RoleBinding/${FULLNAME}-builder`, account: FULLNAME, role: `Role/${FULLNAME}-builder` }]);
    for (const file of files) {
      const bound = boundAccounts(renderChart({ valuesFiles: [join(ciDir, file)], set: ['imageBuilder.namespace=ibs-builds'] }));
      expect(bound.map((b) => b.account), file).not.toContain(`${FULLNAME}-api`);
    }
  });

  it("takes the API's own account name and annotations, or an existing account, but never the worker's", () => {
    const own = renderChart({ set: [
      'buildService.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/ibs-worker',
      'buildService.api.serviceAccount.name=ibs-frontend',
      'buildService.api.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/ibs-api',
    ] });
    expect(containerOf(own, `${FULLNAME}-api`).pod.serviceAccountName).toBe('ibs-frontend');
    expect(find(own, 'ServiceAccount', 'ibs-frontend').metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/ibs-api' });
    const existing = renderChart({ set: ['buildService.api.serviceAccount.create=false', 'buildService.api.serviceAccount.name=platform-api'] });
    expect(existing.filter((m) => m.kind === 'ServiceAccount').map((m) => m.metadata.name)).toEqual([FULLNAME]);
    expect(containerOf(existing, `${FULLNAME}-api`).pod).toMatchObject({ serviceAccountName: 'platform-api', automountServiceAccountToken: false });
    expect(() => renderChart({ set: [`buildService.api.serviceAccount.name=${FULLNAME}`] })).toThrow(/must differ from the worker's ServiceAccount/);
    expect(() => renderChart({ set: ['buildService.serviceAccount.name=shared', 'buildService.api.serviceAccount.name=shared'] })).toThrow(/must differ/);
  });

  it.each(files)("%s: the API's configuration loads from its own environment, reads what it did, and holds no worker-only variable", (file) => {
    const manifests = renderChart({ valuesFiles: [join(ciDir, file), ...operatorValues(file)] });
    const envOf = (component: string) => resolveEnv(manifests, containerOf(manifests, `${FULLNAME}-${component}`).container);
    const api = envOf('api');
    const worker = envOf('worker');
    expect(Object.keys(api).filter((name) => WORKER_ONLY.test(name) && !PLAIN_NOTATION.includes(name))).toEqual([]);
    // Everything else the worker gets, the API gets too, from the same source.
    expect(Object.fromEntries(Object.entries(worker).filter(([name]) => !WORKER_ONLY.test(name) || PLAIN_NOTATION.includes(name)))).toEqual(api);
    const apiConfig = loadConfig({ ...database, ...plainEnv(api) });
    expect(apiView(apiConfig)).toEqual(apiView(loadConfig({ ...database, ...plainEnv(worker) })));
    expect(apiConfig.signing).toEqual({ type: 'none' });
    expect(apiConfig.imageScanner.env).toEqual({});
  });

  it("keeps the scanner's tokens and the signing settings in the worker's Secret only", () => {
    const manifests = renderChart({ valuesFiles: [values('image-scanner'), values('image-signing')] });
    const api = containerOf(manifests, `${FULLNAME}-api`).container;
    const worker = containerOf(manifests, `${FULLNAME}-worker`).container;
    const sources = (c: typeof api) => (c.envFrom ?? []).map((s) => s.configMapRef?.name ?? s.secretRef?.name);
    expect(sources(api)).toEqual([`${FULLNAME}-config`, `${FULLNAME}-env`]);
    expect(sources(worker)).toEqual([`${FULLNAME}-config`, `${FULLNAME}-env`, `${FULLNAME}-worker-env`]);
    const shared = secretData(find(manifests, 'Secret', `${FULLNAME}-env`));
    expect(JSON.stringify(shared)).not.toMatch(/customer-token-here|IMAGE_SIGNER_TYPE|NOTATION_|signing-profiles/);
    expect(secretData(find(manifests, 'Secret', `${FULLNAME}-worker-env`))).toEqual({
      IMAGE_BUILDER_SCANNER_ENV: JSON.stringify({ SNYK_CACHE_PATH: './shared/.snyk-cache', SNYK_TOKEN: 'customer-token-here' }),
      IMAGE_SIGNER_TYPE: 'notation',
      NOTATION_PLUGIN: 'com.amazonaws.signer.notation.plugin',
      NOTATION_PROFILE: 'arn:aws:signer:us-east-1:1234567890:/signing-profiles/your-signing-profiles',
      NOTATION_REGION: 'us-east-1',
    });
    const apiConfig = loadConfig({ ...database, ...plainEnv(resolveEnv(manifests, api)) });
    expect(apiConfig.signing.type).toBe('none');
    expect(apiConfig.secrets).not.toContain('customer-token-here');
    const workerConfig = loadConfig({ ...database, ...plainEnv(resolveEnv(manifests, worker)) });
    expect(workerConfig.signing.type).toBe('notation');
    expect(workerConfig.imageScanner.env.SNYK_TOKEN).toBe('customer-token-here');
  });

  it('gives a worker-only variable from envApp.externalsecret to the worker only, and the rest to both', () => {
    const manifests = renderChart({ valuesFiles: [values('external-secret'), values('image-signing')], set: [
      'buildService.envApp.externalsecret.NOTATION_PROFILE.name=signing', 'buildService.envApp.externalsecret.NOTATION_PROFILE.key=profile',
    ] });
    const names = (component: string) => (containerOf(manifests, `${FULLNAME}-${component}`).container.env ?? []).map((e) => e.name);
    expect(names('api')).toEqual(['POSTGRES_PASSWORD', 'POSTGRES_USER']);
    expect(names('worker')).toEqual(['NOTATION_PROFILE', 'POSTGRES_PASSWORD', 'POSTGRES_USER']);
    expect(secretData(find(manifests, 'Secret', `${FULLNAME}-worker-env`))).not.toHaveProperty('NOTATION_PROFILE');
  });
});
