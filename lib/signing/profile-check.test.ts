/**
 * The AWS Signer profile check against a fake Signer endpoint (AWS Signer cannot run offline): a local HTTP server
 * that answers GetSigningProfile as the Signer API does, so the real @aws-sdk/client-signer is exercised.
 */
import { SignerClient } from '@aws-sdk/client-signer';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSigningProfile } from './profile-check';

const ARN = 'arn:aws:signer:us-east-1:123456789012:/signing-profiles/ibs_profile';
const profiles: Record<string, { status: number; body: unknown; headers?: Record<string, string> }> = {
  ibs_profile: { status: 200, body: { profileName: 'ibs_profile', status: 'Active', platformId: 'Notation-OCI-SHA384-ECDSA', arn: ARN } },
  revoked_one: { status: 200, body: { profileName: 'revoked_one', status: 'Revoked', platformId: 'Notation-OCI-SHA384-ECDSA' } },
  secret_one: { status: 403, body: { message: 'not allowed' }, headers: { 'x-amzn-errortype': 'AccessDeniedException' } },
};

describe('signing profile check (fake AWS Signer endpoint)', () => {
  let server: Server;
  let client: SignerClient;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const name = /^\/signing-profiles\/([\w-]+)/.exec(req.url ?? '')?.[1] ?? '';
      const answer = profiles[name] ?? { status: 404, body: { message: 'not found' }, headers: { 'x-amzn-errortype': 'ResourceNotFoundException' } };
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new SignerClient({
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake-secret' },
    });
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('accepts an active Notation profile in NOTATION_REGION, asking Signer with the owner account', async () => {
    await checkSigningProfile({ profile: ARN, region: 'us-east-1' }, client);
    expect(seen.at(-1)).toBe('GET /signing-profiles/ibs_profile?profileOwner=123456789012');
  });

  it('names each problem plainly', async () => {
    await expect(checkSigningProfile({ profile: ARN.replace('ibs_profile', 'missing'), region: 'us-east-1' }, client)).rejects.toThrow(/does not exist in account 123456789012, region us-east-1/);
    await expect(checkSigningProfile({ profile: ARN.replace('ibs_profile', 'revoked_one'), region: 'us-east-1' }, client)).rejects.toThrow(/is Revoked, not Active/);
    await expect(checkSigningProfile({ profile: ARN.replace('ibs_profile', 'secret_one'), region: 'us-east-1' }, client)).rejects.toThrow(/may not use the signing profile secret_one/);
    await expect(checkSigningProfile({ profile: ARN, region: 'eu-west-1' }, client)).rejects.toThrow(/set NOTATION_REGION=us-east-1/);
  });
});
