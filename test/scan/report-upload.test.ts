/**
 * The scan report's upload to an https reportUploadPath, as the worker wires it (worker/dependencies.ts): the
 * server's certificate is verified unless ALLOW_SELF_SIGNED_CERTS=true, as for the registries and S3.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createObjectStore } from '../../lib/storage';
import { scanReportDestination } from '../../worker/dependencies';
import { selfSignedCertificate } from '../support/tls';

describe('scan report upload to a self-signed https endpoint', () => {
  const received: Array<{ method?: string; url?: string; body: string }> = [];
  let server: Server;
  let origin: string;

  beforeAll(async () => {
    server = createServer(selfSignedCertificate(), (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function destination(allowSelfSignedCerts: string) {
    const config = loadConfig({
      POSTGRES_HOST: 'postgres', POSTGRES_USER: 'ibs', POSTGRES_PASSWORD: 'pg-password', POSTGRES_DB: 'ibs',
      IMAGE_BUILDER_SCANNER_ENABLED: 'true', IMAGE_BUILDER_SCANNER_IMAGE: 'registry.example/scanner:v1',
      IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH: `${origin}/scan-reports`, ALLOW_SELF_SIGNED_CERTS: allowSelfSignedCerts,
    });
    return scanReportDestination(config, createObjectStore(config));
  }

  it('is refused without ALLOW_SELF_SIGNED_CERTS, with a message that names the setting', async () => {
    received.length = 0;
    await expect(destination('false').upload('b-1', Buffer.from('{"ok":true}'))).rejects.toThrow(
      new RegExp(`the scan report upload to ${origin} failed: its TLS certificate is not trusted \\(DEPTH_ZERO_SELF_SIGNED_CERT\\); .*ALLOW_SELF_SIGNED_CERTS=true`),
    );
    expect(received).toEqual([]);
  });

  it('succeeds with ALLOW_SELF_SIGNED_CERTS=true', async () => {
    received.length = 0;
    await expect(destination('true').upload('b-1', Buffer.from('{"ok":true}'))).resolves.toBe(`${origin}/scan-reports/b-1/scan-report.json`);
    expect(received).toEqual([{ method: 'PUT', url: '/scan-reports/b-1/scan-report.json', body: '{"ok":true}' }]);
  });
});
