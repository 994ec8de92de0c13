/**
 * Renders the chart with the real helm (installed by infra/local into the cache) and reads the result: the
 * manifests, and the environment a service container ends up with once Kubernetes resolves envFrom and env.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { scratchDir } from '../support/scratch';

export const chartDir = resolve(__dirname, '../../infra/helm/build-service');
export const ciDir = join(chartDir, 'ci');
const cacheBin = join(process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service'), 'bin');
export const helm = process.env.HELM ?? join(cacheBin, 'helm');

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export const RELEASE = 'ibs';

export function run(args: string[]): string {
  return execFileSync(helm, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function parseManifests(out: string): Manifest[] {
  return parseAllDocuments(out)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((doc): doc is Manifest => doc !== null);
}

export interface RenderOptions {
  valuesFiles?: string[];
  set?: string[];
  apiVersions?: string[];
  namespace?: string;
}

function flags(options: RenderOptions): string[] {
  return [
    '--namespace', options.namespace ?? 'ibs',
    ...(options.valuesFiles ?? []).flatMap((file) => ['-f', file]),
    ...(options.set ?? []).flatMap((value) => ['--set', value]),
    ...(options.apiVersions ?? []).flatMap((value) => ['--api-versions', value]),
  ];
}

/** `helm template` of the chart itself, values at the top level. */
export function renderChart(options: RenderOptions = {}): Manifest[] {
  return parseManifests(run(['template', RELEASE, chartDir, ...flags(options)]));
}

let umbrellaDir: string | undefined;

/** An umbrella chart with this chart as its `build-service` subchart, as the spec's values snippets assume. */
function umbrella(): string {
  if (umbrellaDir) return umbrellaDir;
  const dir = scratchDir('ibs-umbrella-');
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: platform\nversion: 1.0.0\n');
  cpSync(chartDir, join(dir, 'charts', 'build-service'), { recursive: true });
  umbrellaDir = dir;
  return dir;
}

/** The values file wrapped under `build-service:`, the way the spec writes every snippet. */
export function underBuildServiceKey(file: string): string {
  const wrapped = join(scratchDir('ibs-values-'), 'values.yaml');
  const indented = readFileSync(file, 'utf8').split('\n').map((line) => `  ${line}`).join('\n');
  writeFileSync(wrapped, `build-service:\n${indented}\n`);
  return wrapped;
}

export function renderUmbrella(options: RenderOptions = {}): Manifest[] {
  return parseManifests(run(['template', RELEASE, umbrella(), ...flags(options)]));
}

export function find(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in: ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
}

export interface Container {
  name: string;
  image: string;
  command: string[];
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  securityContext?: Record<string, unknown>;
}

export function containerOf(manifests: Manifest[], deployment: string): { container: Container; pod: Record<string, unknown> } {
  const spec = (find(manifests, 'Deployment', deployment) as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: Container[] } } } }).spec.template.spec;
  return { container: spec.containers[0]!, pod: spec };
}

export function secretData(secret: Manifest): Record<string, string> {
  const { data, stringData } = secret as unknown as { data?: Record<string, string>; stringData?: Record<string, string> };
  const decoded = Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  return { ...decoded, ...(stringData ?? {}) };
}

/** Where each variable of a container comes from once Kubernetes resolves it. */
export type ResolvedEnv = Record<string, string | { secretKeyRef: { name: string; key: string } }>;

/** envFrom sources in order (later wins), then env entries (which win over every envFrom source). */
export function resolveEnv(manifests: Manifest[], container: Container): ResolvedEnv {
  const env: ResolvedEnv = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, (find(manifests, 'ConfigMap', source.configMapRef.name) as unknown as { data?: Record<string, string> }).data ?? {});
    if (source.secretRef) Object.assign(env, secretData(find(manifests, 'Secret', source.secretRef.name)));
  }
  for (const entry of container.env ?? []) {
    if (entry.valueFrom?.secretKeyRef) env[entry.name] = { secretKeyRef: entry.valueFrom.secretKeyRef };
    else env[entry.name] = entry.value ?? '';
  }
  return env;
}

/** Only the plain values, as loadConfig would see them (references are resolved by the kubelet, not here). */
export function plainEnv(env: ResolvedEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export function readYaml(file: string): unknown {
  return parse(readFileSync(file, 'utf8'));
}
