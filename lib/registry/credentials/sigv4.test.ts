import { describe, expect, it } from 'vitest';
import { signRequest } from './sigv4';

describe('signRequest', () => {
  it('reproduces the signature of the AWS SigV4 documentation example (IAM ListUsers)', () => {
    const headers = signRequest(
      {
        method: 'GET',
        url: 'https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: '',
      },
      { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
      'us-east-1',
      'iam',
      new Date('2015-08-30T12:36:00Z'),
    );
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    );
    expect(headers['x-amz-date']).toBe('20150830T123600Z');
  });

  it('signs the session token of temporary credentials', () => {
    const headers = signRequest({ method: 'POST', url: 'https://api.ecr.eu-west-1.amazonaws.com/', headers: {}, body: '{}' }, { accessKeyId: 'A', secretAccessKey: 'S', sessionToken: 'T' }, 'eu-west-1', 'ecr');
    expect(headers['x-amz-security-token']).toBe('T');
    expect(headers.authorization).toMatch(/SignedHeaders=host;x-amz-date;x-amz-security-token,/);
  });
});
