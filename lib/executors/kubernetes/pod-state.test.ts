import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { overdueDeletion, podProgress, reportedDigest, runningStep } from './pod-state';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function pod(status: V1Pod['status'], memoryLimit = '1G'): V1Pod {
  return { spec: { containers: [{ name: 'build', resources: { limits: { memory: memoryLimit } } }] }, status };
}
const terminated = (exitCode: number, reason: string, message?: string) => ({ name: 'build', image: 'b', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason, message } } });

describe('podProgress', () => {
  it.each<[string, V1Pod['status'], string, RegExp]>([
    ['OOMKilled', { phase: 'Failed', containerStatuses: [terminated(137, 'OOMKilled')] }, 'builder_oom_killed', /out of memory \(limit 1G\)/],
    ['evicted', { phase: 'Failed', reason: 'Evicted', message: 'low on ephemeral-storage' }, 'builder_evicted', /low on ephemeral-storage/],
    ['image pull', { phase: 'Pending', containerStatuses: [{ name: 'build', image: 'r/ib:1', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'back-off' } } }] }, 'builder_image_pull_failed', /r\/ib:1 \(ImagePullBackOff\)/],
    ['deadline', { phase: 'Failed', reason: 'DeadlineExceeded' }, 'build_timeout', /active deadline/],
    ['non-zero exit', { phase: 'Failed', containerStatuses: [terminated(2, 'Error')] }, 'build_failed', /exit code 2.*\n.*step 3 failed/s],
    ['context fetch', { phase: 'Failed', initContainerStatuses: [{ ...terminated(22, 'Error', 'HTTP 403'), name: 'fetch-context' }] }, 'context_fetch_failed', /exit 22\): HTTP 403/],
    ['success without digest', { phase: 'Succeeded', containerStatuses: [terminated(0, 'Completed', 'nothing')] }, 'build_failed', /no image digest/],
  ])('maps %s to %s', (_name, status, code, message) => {
    const progress = podProgress(pod(status), 'step 3 failed');
    expect(progress.state).toBe('failed');
    if (progress.state !== 'failed') return;
    expect(progress.error.code).toBe(code);
    expect(progress.error.message).toMatch(message);
  });

  it('returns the digest the builder reported on success', () => {
    expect(podProgress(pod({ phase: 'Succeeded', containerStatuses: [terminated(0, 'Completed', JSON.stringify({ digest: DIGEST }))] }), '')).toEqual({ state: 'succeeded', digest: DIGEST });
  });

  describe('a pod taken away (a node drain, an eviction, a person, its node shutting down)', () => {
    const deleting = (status: V1Pod['status']): V1Pod => ({
      ...pod(status),
      metadata: { namespace: 'builds', name: 'ibs-build-1', deletionTimestamp: new Date('2026-12-05T18:25:17Z') },
      spec: { nodeName: 'node-1', containers: [{ name: 'build' }] },
    });
    const drained = { type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' };

    it('ends builder_pod_disrupted, for another attempt, when its build was killed', () => {
      const progress = podProgress(deleting({ phase: 'Failed', conditions: [drained], containerStatuses: [terminated(137, 'Error')] }), '#5 [2/2] RUN sleep 90');
      expect(progress.state).toBe('failed');
      if (progress.state !== 'failed') return;
      expect(progress.error.code).toBe('builder_pod_disrupted');
      expect(progress.error.transient).toBe(true);
      expect(progress.error.message).toMatch(/builds\/ibs-build-1 was deleted \(EvictionByEvictionAPI: Eviction API: evicting\) before the build finished, and it ended: .*exit code 137/s);
      expect(progress.error.evidence).toEqual({ node: 'node-1', disruption: 'EvictionByEvictionAPI', endedAs: 'build_failed', step: '[2/2] RUN sleep 90' });
    });

    it('is still followed while it runs, and its result counts when the build finished within the grace period', () => {
      expect(podProgress(deleting({ phase: 'Running', conditions: [drained] }), '').state).toBe('running');
      const done = deleting({ phase: 'Succeeded', conditions: [drained], containerStatuses: [terminated(0, 'Completed', JSON.stringify({ digest: DIGEST }))] });
      expect(podProgress(done, '')).toEqual({ state: 'succeeded', digest: DIGEST });
    });

    it('is overdue once it outlives its deletion deadline by more than the allowance, as on a node that cannot end it', () => {
      const deadline = Date.parse('2026-12-05T18:25:17Z');
      const running = deleting({ phase: 'Running', conditions: [{ ...drained, reason: 'DeletionByTaintManager' }] });
      expect(overdueDeletion(running, 60_000, '', deadline + 60_000)).toBeUndefined();
      expect(overdueDeletion(pod({ phase: 'Running' }), 0, '', deadline + 3_600_000)).toBeUndefined();
      const error = overdueDeletion(running, 60_000, '', deadline + 60_001);
      expect(error).toBeDefined();
      if (!error) return;
      expect([error.code, error.transient]).toEqual(['builder_pod_disrupted', true]);
      expect(error.message).toMatch(/\(DeletionByTaintManager: .*node node-1 had not ended it 60 s after its grace period \(the node may be unreachable\)/);
    });

    it("ends builder_pod_disrupted when its node's graceful shutdown killed its build, as the kubelet reports it", () => {
      const shutdown = { ...pod({
        phase: 'Failed', reason: 'Terminated', message: 'Pod was terminated in response to imminent node shutdown.',
        conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: 'Pod was terminated in response to imminent node shutdown.' }],
        containerStatuses: [terminated(137, 'Error')],
      }), metadata: { namespace: 'builds', name: 'ibs-build-2' } };
      shutdown.spec!.nodeName = 'spot-1';
      const progress = podProgress(shutdown, '');
      expect(progress.state === 'failed' && [progress.error.code, progress.error.transient]).toEqual(['builder_pod_disrupted', true]);
      if (progress.state !== 'failed') return;
      expect(progress.error.message).toMatch(/^the pod builds\/ibs-build-2 was stopped by its node spot-1 shutting down \(Terminated: Pod was terminated in response to imminent node shutdown\.\) before the build finished, and it ended/);
      expect(progress.error.evidence).toMatchObject({ node: 'spot-1', disruption: 'TerminationByKubelet', endedAs: 'build_failed' });
      // One the kubelet refused while its node shut down never ran: another attempt too.
      const refused = podProgress(pod({ phase: 'Failed', reason: 'NodeShutdown', message: 'Pod was rejected as the node is shutting down.' }), '');
      expect(refused.state === 'failed' && refused.error.code).toBe('builder_pod_disrupted');
    });

    it('is the same failure as before when nothing is deleting it', () => {
      const progress = podProgress(pod({ phase: 'Failed', conditions: [drained], containerStatuses: [terminated(137, 'Error')] }), '');
      expect(progress.state === 'failed' && [progress.error.code, progress.error.transient]).toEqual(['build_failed', false]);
    });
  });

  it('reports pending and running pods as still going', () => {
    expect(podProgress(pod({ phase: 'Pending' }), '').state).toBe('pending');
    expect(podProgress(pod({ phase: 'Running' }), '').state).toBe('running');
  });
});

describe('reportedDigest', () => {
  it('accepts only a sha256 digest in the JSON report', () => {
    expect(reportedDigest(JSON.stringify({ digest: DIGEST }))).toBe(DIGEST);
    expect(reportedDigest(JSON.stringify({ digest: 'sha256:short' }))).toBeUndefined();
    expect(reportedDigest('oops')).toBeUndefined();
    expect(reportedDigest(undefined)).toBeUndefined();
  });
});

describe('failure evidence', () => {
  const buildkitTail = '#6 [2/3] COPY . /src\n#6 DONE 0.1s\n#7 [3/3] RUN make -j8 all\n#7 12.3 cc1plus: compiling\n';

  it('names the memory limit and the step an OOM kill interrupted', () => {
    const progress = podProgress({ ...pod({ phase: 'Failed', containerStatuses: [terminated(137, 'OOMKilled')] }, '2Gi'), spec: { nodeName: 'node-a', containers: [{ name: 'build', resources: { limits: { memory: '2Gi' } } }] } }, buildkitTail);
    if (progress.state !== 'failed') throw new Error('not failed');
    expect(progress.error.evidence).toEqual({ container: 'build', memoryLimit: '2Gi', step: '[3/3] RUN make -j8 all', node: 'node-a' });
    expect(progress.error.message).toContain('during [3/3] RUN make -j8 all');
  });

  it("quotes the node's reason for an eviction", () => {
    const progress = podProgress({ ...pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: ephemeral-storage.' }), spec: { nodeName: 'node-b', containers: [] } }, buildkitTail);
    if (progress.state !== 'failed') throw new Error('not failed');
    expect(progress.error.evidence).toMatchObject({ node: 'node-b', nodeReason: 'The node was low on resource: ephemeral-storage.' });
  });

  it("finds Kaniko's running step too, and none in a log without steps", () => {
    expect(runningStep('INFO[0001] Unpacking rootfs\nINFO[0004] RUN pip install -r requirements.txt\nKilled\n')).toBe('RUN pip install -r requirements.txt');
    expect(runningStep('no steps here\n')).toBeUndefined();
  });
});
