import { describe, expect, it } from 'vitest';
import { ServiceMetrics, registryOutcomeOf } from './metrics';

async function value(metrics: ServiceMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const match = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l) && (!('metricName' in v) || v.metricName === name || v.metricName === `${name}_count`));
  return match?.value;
}

describe('ServiceMetrics', () => {
  it('keeps at most maxConsumers consumer label values; the rest count as other', async () => {
    const metrics = new ServiceMetrics({ maxConsumers: 2, processMetrics: false });
    for (const consumer of ['a', 'b', 'c', 'd', 'a']) metrics.observeTransition({ from: 'queued', since: new Date(), engine: null, consumer }, 'running');
    expect(await value(metrics, 'ibs_builds_started_total', { consumer: 'a', engine: 'buildkit' })).toBe(2);
    expect(await value(metrics, 'ibs_builds_started_total', { consumer: 'b' })).toBe(1);
    expect(await value(metrics, 'ibs_builds_started_total', { consumer: 'other' })).toBe(2);
    expect(await value(metrics, 'ibs_builds_started_total', { consumer: 'c' })).toBeUndefined();
  });

  it('observes the phase a build leaves, and counts a start only when it leaves the queue for a step', async () => {
    const metrics = new ServiceMetrics({ processMetrics: false, defaultEngine: 'kaniko' });
    const now = new Date('2026-12-01T10:00:30Z');
    metrics.observeTransition({ from: 'queued', since: new Date('2026-12-01T10:00:00Z'), engine: null, consumer: 'x' }, 'running', now);
    metrics.observeFinished({ from: 'pushing', since: new Date('2026-12-01T10:00:20Z'), engine: 'buildkit', consumer: 'x' }, 'succeeded', '', now);
    metrics.observeFinished({ from: 'queued', since: new Date('2026-12-01T10:00:00Z'), engine: null, consumer: 'y' }, 'cancelled', 'cancelled', now);
    const phases = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'ibs_build_phase_duration_seconds')!;
    const sum = (phase: string, engine: string) => (phases.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]).find((v) => v.metricName === 'ibs_build_phase_duration_seconds_sum' && v.labels.phase === phase && v.labels.engine === engine)?.value;
    expect(sum('queued', 'kaniko')).toBe(60);
    expect(sum('push', 'buildkit')).toBe(10);
    expect(await value(metrics, 'ibs_builds_started_total', { consumer: 'y' })).toBeUndefined();
    expect(await value(metrics, 'ibs_builds_finished_total', { status: 'cancelled', code: 'cancelled', engine: 'kaniko' })).toBe(1);
  });

  it('reads running and waiting builds once per scrape', async () => {
    const metrics = new ServiceMetrics({ processMetrics: false });
    let reads = 0;
    metrics.countBuildsWith(async () => {
      reads++;
      return { active: { running: 3, pushing: 1 }, waiting: 5, oldestWaitingSeconds: 42 };
    });
    const text = await metrics.text();
    expect(reads).toBe(1);
    expect(text).toContain('ibs_builds_running{status="running"} 3');
    expect(text).toContain('ibs_builds_running{status="scanning"} 0');
    expect(text).toContain('ibs_builds_waiting 5');
    expect(text).toContain('ibs_builds_oldest_waiting_seconds 42');
  });

  it('maps registry answers to bounded outcomes', () => {
    expect([200, 201, 307, 401, 403, 404, 429, 400, 503].map(registryOutcomeOf)).toEqual(['success', 'success', 'success', 'unauthorized', 'forbidden', 'not_found', 'throttled', 'client_error', 'server_error']);
  });
});
