import { describe, expect, it } from 'vitest';
import {
  isAwsRegion,
  isEcrHost,
  isEnvName,
  isHostName,
  isHttpUrl,
  isImagePattern,
  isImageReference,
  isImageRepository,
  isImageTag,
  isKubernetesName,
  isReportUploadPath,
  parseJsonStringArray,
  parseJsonStringMap,
  signerProfileRegion,
  splitList,
} from './validators';

// [validator, accepted values, refused values]
const cases: Array<[string, (v: string) => boolean, string[], string[]]> = [
  ['isKubernetesName', isKubernetesName, ['a', 'nonroot-v2', 'dockerhub-image-pull-secret-read-only', 'a.b-c'], ['', 'My_Creds', '-a', 'a-', 'a b', 'x'.repeat(254)]],
  ['isHostName', isHostName, ['repo1.myregistry.com', 'localhost', 'registry:5000', '127.0.0.1'], ['*.myregistry.com', 'https://a.com', 'a.com/path', '', '-a.com']],
  ['isHttpUrl', isHttpUrl, ['http://minio:9000', 'https://a.example/path'], ['minio:9000', 'ftp://a', 'http://', '']],
  ['isImageRepository', isImageRepository, ['registry.example/datarobot', 'localhost:5000/team/app', 'image-builder'], ['Registry/Up', 'a/b:1.0', 'a//b', '']],
  ['isImageReference', isImageReference, ['registry.example/kaniko:1.0', 'customer-registry.com/customer-scanner:v1.0.0', `a/b@sha256:${'0'.repeat(64)}`, `a/b:1@sha256:${'f'.repeat(64)}`], ['a/b', 'a/b:', 'a b:1', 'A/b:1']],
  ['isImageTag', isImageTag, ['11.7.0', 'v1', '1.0-rc_1'], ['', '.1', '1/2', 'x'.repeat(129)]],
  ['isAwsRegion', isAwsRegion, ['us-east-1', 'eu-central-2', 'us-gov-west-1', 'ap-southeast-10'], ['east', 'US-EAST-1', 'us-east', 'us-east-1a']],
  ['isImagePattern', isImagePattern, ['docker.io/datarobot/*', '*.dkr.ecr.us-east-1.amazonaws.com/*', 'quay.io/org/img:tag'], ['bad entry', 'https://docker.io/x', '', '/abs']],
  ['isEnvName', isEnvName, ['SNYK_TOKEN', '_X', 'a1'], ['1A', 'A-B', '']],
  ['isReportUploadPath', isReportUploadPath, ['s3://customer-bucket/scan-reports', 'gs://b', 'az://container/p', 'https://upload.example/r'], ['customer-bucket/reports', 's3://', 'ftp://x/y']],
  ['isEcrHost', isEcrHost, ['123456789012.dkr.ecr.us-east-1.amazonaws.com', '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn'], ['dkr.ecr.us-east-1.amazonaws.com', 'registry.example', '123.dkr.ecr.us-east-1.amazonaws.com']],
];

describe.each(cases)('%s', (_name, valid, accepted, refused) => {
  it.each(accepted)('accepts %j', (value) => expect(valid(value)).toBe(true));
  it.each(refused)('refuses %j', (value) => expect(valid(value)).toBe(false));
});

describe('signerProfileRegion', () => {
  it('reads the region of the documentation example', () => {
    expect(signerProfileRegion('arn:aws:signer:us-east-1:1234567890:/signing-profiles/your-signing-profiles')).toBe('us-east-1');
  });
  it('refuses what is not a signing-profile ARN', () => {
    expect(signerProfileRegion('arn:aws:iam::123456789012:role/x')).toBeUndefined();
  });
});

describe('lists and JSON values', () => {
  it('splits a comma list, trimming and dropping empty items', () => expect(splitList(' a, b,,c ')).toEqual(['a', 'b', 'c']));
  it('parses a JSON string array', () => expect(parseJsonStringArray('["/bin/sh","-c"]')).toEqual(['/bin/sh', '-c']));
  it.each(['/bin/sh', '[1]', '{"a":"b"}'])('refuses %s as a string array', (v) => expect(parseJsonStringArray(v)).toBeUndefined());
  it('parses a JSON string map', () => expect(parseJsonStringMap('{"A":"1"}')).toEqual({ A: '1' }));
  it.each(['A=1', '["a"]', '{"A":1}', 'null'])('refuses %s as a string map', (v) => expect(parseJsonStringMap(v)).toBeUndefined());
});
