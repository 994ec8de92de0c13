import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { BuildFailedError } from '../lib/executors/executor';
import { PolicyViolation } from '../lib/policy/errors';
import { SourceImageError } from '../lib/sources/push-image';
import { sourceStepFailure } from './sources';

const failureOf = (err: unknown) => sourceStepFailure(err, 'scan_failed', ['canary-secret-1']) as ApplicationFailure;

describe('sourceStepFailure', () => {
  it('retries a failure the executor marks transient (a scan pod deleted by a drain), keeping its code and evidence', () => {
    const failure = failureOf(new BuildFailedError('builder_pod_disrupted', 'the pod ns/ibs-scan-1 was deleted', { node: 'node-1' }, true));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect([failure.type, failure.nonRetryable]).toEqual(['builder_pod_disrupted', false]);
    expect(failure.details).toEqual([{ node: 'node-1' }]);
  });

  it("does not retry the executor's other failures or a policy refusal", () => {
    const scanner = failureOf(new BuildFailedError('scan_report_missing', 'the scanner reported nothing'));
    expect([scanner.type, scanner.nonRetryable]).toEqual(['scan_report_missing', true]);
    const policy = failureOf(new PolicyViolation('source_registry_not_allowed', 'not allowed'));
    expect([policy.type, policy.nonRetryable]).toEqual(['source_registry_not_allowed', true]);
  });

  it('gives an error without a code the step\'s code, retryable, and keeps secrets out of the message', () => {
    const failure = failureOf(new Error('connection to canary-secret-1@host reset'));
    expect([failure.type, failure.nonRetryable]).toEqual(['scan_failed', false]);
    expect(failure.message).not.toContain('canary-secret-1');
  });

  it('records a source image failure as source_image_unavailable, its reason and the registry\'s answer as evidence', () => {
    const failure = failureOf(new SourceImageError('the index is nested too deep', false, 'source_index_too_deep'));
    expect([failure.type, failure.nonRetryable]).toEqual(['source_image_unavailable', true]);
    expect(failure.details).toEqual([{ reason: 'source_index_too_deep' }]);
    const registry = failureOf(new SourceImageError('cannot read the source image', true, 'registry_error', { registry: 'r.example', registryStatus: '503' }));
    expect([registry.type, registry.nonRetryable]).toEqual(['source_image_unavailable', false]);
    expect(registry.details).toEqual([{ registry: 'r.example', registryStatus: '503', reason: 'registry_error' }]);
  });
});
