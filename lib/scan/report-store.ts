/**
 * Where scan reports go. Always into the service's own bucket (LOGS_BUCKET) under the build's id, which is what
 * GET /v1/builds/{id}/scan-report serves; and, when imageBuilder.imageScanner.reportUploadPath is set, also to that
 * location under the build's id: `s3://bucket/prefix` (s3 and minio storage types), `gs://…` (gcs), `az://…`
 * (azure) with the service's storage credentials, or an http(s) URL that accepts a PUT.
 */
import { Agent, fetch, type Response } from 'undici';
import type { StorageConfig } from '../config/storage';
import { isUntrustedCertificate } from '../registry/transport';
import { createObjectStore, type ObjectStore } from '../storage';

export function scanReportKey(buildId: string): string {
  return `scan-reports/builds/${buildId}/scan-report.json`;
}

const SCHEMES: Record<string, StorageConfig['type'][]> = { s3: ['s3', 'minio'], gs: ['gcs'], az: ['azure'] };

export interface ReportDestination {
  /** Uploads the report; answers the URL that names where it went. */
  upload(buildId: string, body: Buffer): Promise<string>;
}

export interface ReportDestinationOptions {
  /** ALLOW_SELF_SIGNED_CERTS: an https reportUploadPath's certificate is not verified, as with the registry and S3. */
  allowSelfSignedCerts?: boolean;
}

/**
 * The destination reportUploadPath names, checked against the storage type (its credentials are the ones used).
 * Throws at start-up when they do not fit, so an operator learns it before the first build.
 */
export function reportDestination(reportUploadPath: string | undefined, storage: StorageConfig, own: ObjectStore, options: ReportDestinationOptions = {}): ReportDestination {
  if (!reportUploadPath) {
    return { upload: async (buildId, body) => { await own.put(scanReportKey(buildId), body, reportHeaders(body)); return `${schemeOf(storage)}://${own.bucket}/${scanReportKey(buildId)}`; } };
  }
  const url = new URL(reportUploadPath);
  const scheme = url.protocol.replace(/:$/, '');
  const prefix = url.pathname.replace(/^\/+|\/+$/g, '');
  const keyFor = (buildId: string) => [prefix, buildId, 'scan-report.json'].filter(Boolean).join('/');
  if (scheme === 'http' || scheme === 'https') {
    const dispatcher = options.allowSelfSignedCerts ? new Agent({ connect: { rejectUnauthorized: false } }) : undefined;
    return {
      upload: async (buildId, body) => {
        const target = `${url.origin}/${keyFor(buildId)}`;
        let res: Response;
        try {
          res = await fetch(target, { method: 'PUT', body, headers: { 'content-type': 'application/json' }, dispatcher });
        } catch (err) {
          throw uploadFailure(url.origin, err);
        }
        await res.body?.cancel();
        if (!res.ok) throw new Error(`the scan report upload to ${url.origin} answered ${res.status}; check reportUploadPath`);
        return target;
      },
    };
  }
  const allowed = SCHEMES[scheme];
  if (!allowed?.includes(storage.type)) {
    throw new Error(`IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH (${scheme}://…) does not fit the storage type ${storage.type}: use ${Object.entries(SCHEMES).filter(([, t]) => t.includes(storage.type)).map(([s]) => `${s}://bucket/prefix`).join(' or ')}, or an http(s) URL`);
  }
  const store = createObjectStore({ storage: { ...storage, bucket: url.hostname } });
  return {
    upload: async (buildId, body) => {
      await store.put(keyFor(buildId), body, reportHeaders(body));
      return `${scheme}://${url.hostname}/${keyFor(buildId)}`;
    },
  };
}

/** A network failure of the http(s) upload, saying what to change when it is the certificate. */
function uploadFailure(origin: string, err: unknown): Error {
  const cause = (err as { cause?: unknown })?.cause ?? err;
  const code = String((cause as { code?: unknown })?.code ?? '');
  if (isUntrustedCertificate(code)) {
    return new Error(`the scan report upload to ${origin} failed: its TLS certificate is not trusted (${code}); give it a certificate from a trusted CA, or set ALLOW_SELF_SIGNED_CERTS=true to accept self-signed certificates`);
  }
  return new Error(`the scan report upload to ${origin} failed (${code || (cause instanceof Error ? cause.message : 'network error')}); check reportUploadPath`);
}

function reportHeaders(body: Buffer) {
  return { contentType: 'application/json', contentLength: body.length };
}

function schemeOf(storage: StorageConfig): string {
  return storage.type === 'gcs' ? 'gs' : storage.type === 'azure' ? 'az' : 's3';
}
