/**
 * The chart's alert rules pass the real promtool (built by infra/local/install.d/promtool.sh): rendered by the real
 * helm exactly as the PrometheusRule carries them, with the chart's defaults and with changed thresholds. The
 * metric names they use are checked against the service's exports by telemetry.test.ts (through the dashboard)
 * and here against the names lib/telemetry/metrics.ts registers.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ServiceMetrics } from '../../lib/telemetry/metrics';
import { renderChart } from '../helm/render';
import { scratchDir } from '../support/scratch';

const cacheBin = join(process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service'), 'bin');
const promtool = process.env.PROMTOOL ?? join(cacheBin, 'promtool');

interface RuleGroups {
  groups: { name: string; rules: { alert: string; expr: string; for?: string }[] }[];
}

function renderedRules(set: string[] = []): RuleGroups {
  const rule = renderChart({ set: ['buildService.metrics.prometheusRule.enabled=true', ...set] }).find((m) => m.kind === 'PrometheusRule');
  expect(rule, 'the PrometheusRule is rendered when enabled').toBeDefined();
  return (rule as unknown as { spec: RuleGroups }).spec;
}

function promtoolCheck(rules: RuleGroups): string {
  const dir = scratchDir('ibs-rules-');
  const file = join(dir, 'rules.yaml');
  writeFileSync(file, JSON.stringify(rules));
  return execFileSync(promtool, ['check', 'rules', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe("the chart's Prometheus alert rules", () => {
  it('pass `promtool check rules` with the default and with changed thresholds', () => {
    for (const set of [[], ['buildService.metrics.prometheusRule.failureRatio=0.5', 'buildService.metrics.prometheusRule.maxQueueWaitSeconds=120']]) {
      const rules = renderedRules(set);
      const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
      expect(alerts).toEqual(['ImageBuildsFailing', 'ImageBuildQueueStuck', 'ImageBuildWorkerAbsent', 'ImageBuildStorageErrors', 'ImageBuildRegistryErrors']);
      expect(promtoolCheck(rules)).toMatch(/SUCCESS: 5 rules found/);
    }
    expect(renderedRules(['buildService.metrics.prometheusRule.maxQueueWaitSeconds=120']).groups[0]!.rules[1]!.expr).toContain('> 120');
  });

  it('promtool refuses a broken rule, so the check above can fail', () => {
    const rules = renderedRules();
    rules.groups[0]!.rules[0]!.expr = 'sum(rate(ibs_builds_finished_total[5m]) >';
    expect(() => promtoolCheck(rules)).toThrow();
  });

  it('use only metric names the service registers (ibs_temporal_sdk_metrics_up is the worker endpoint\'s own)', async () => {
    const metrics = new ServiceMetrics({ processMetrics: false });
    const registered = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    registered.add('ibs_temporal_sdk_metrics_up');
    const used = renderedRules().groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/\b(ibs_[a-z0-9_]+)/g)].map((m) => m[1]!)));
    expect(used.length).toBeGreaterThan(4);
    expect(used.filter((name) => !registered.has(name.replace(/_(bucket|count|sum)$/, '')))).toEqual([]);
  });

  it('are off by default, and so are the ServiceMonitor and the dashboard', () => {
    const kinds = renderChart().map((m) => `${m.kind}/${m.metadata.name}`);
    expect(kinds.filter((k) => /PrometheusRule|ServiceMonitor|dashboard/.test(k))).toEqual([]);
    const on = renderChart({ set: ['buildService.metrics.serviceMonitor.enabled=true', 'buildService.metrics.grafanaDashboard.enabled=true'] });
    const dashboard = on.find((m) => m.kind === 'ConfigMap' && m.metadata.name.endsWith('-dashboard')) as unknown as { metadata: { labels: Record<string, string> }; data: Record<string, string> };
    expect(dashboard.metadata.labels.grafana_dashboard).toBe('1');
    expect((JSON.parse(dashboard.data['image-build-service.json']!) as { uid: string }).uid).toBe('image-build-service');
    const monitor = on.find((m) => m.kind === 'ServiceMonitor') as unknown as { spec: { endpoints: { port: string; path: string }[] } };
    expect(monitor.spec.endpoints.map((e) => e.port)).toEqual(['http', 'metrics']);
    // The worker exposes the port the ServiceMonitor scrapes, and its configuration tells it to listen there.
    const worker = on.find((m) => m.kind === 'Deployment' && m.metadata.name.endsWith('-worker')) as unknown as { spec: { template: { spec: { containers: { ports: { name: string; containerPort: number }[] }[] } } } };
    expect(worker.spec.template.spec.containers[0]!.ports).toEqual([{ name: 'http', containerPort: 9464 }]);
    const config = on.find((m) => m.kind === 'ConfigMap' && m.metadata.name.endsWith('-config')) as unknown as { data: Record<string, string> };
    expect(config.data).toMatchObject({ WORKER_METRICS_HOST: '0.0.0.0', WORKER_METRICS_PORT: '9464', METRICS_ENABLED: 'true', LOG_LEVEL: 'info' });
    expect(parse(JSON.stringify(config.data))).toBeTruthy();
  });
});
