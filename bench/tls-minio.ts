/**
 * A MinIO of the benchmark's own that serves HTTPS (OVER_TLS=1 of bench/storage-put.ts and bench/context-upload.ts;
 * the stack's MinIO serves plain HTTP), with a self-signed certificate written to a file that a process trusts
 * through NODE_EXTRA_CA_CERTS (read only at start-up) and curl through --cacert. With ALLOW_SELF_SIGNED_CERTS off, the
 * service's S3 adapter verifies it as it would a CA's.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createBucket, minioServer, type MinioInstance } from '../test/faults/support/components';
import { selfSignedCertificate } from '../test/support/tls';

export interface TlsMinio {
  minio: MinioInstance;
  certFile: string;
  /** The service's variables that point it at this MinIO and make it trust the certificate. */
  env: Record<string, string>;
}

/** Starts it under `dir` (its data and certificate live there) with its bucket made; stop it with minio.component.stop(). */
export async function startTlsMinio(dir: string): Promise<TlsMinio> {
  const certificate = selfSignedCertificate();
  const certFile = join(dir, 'minio-cert.pem');
  await writeFile(certFile, certificate.cert);
  const minio = await minioServer(dir, '127.0.0.1', certificate);
  await minio.component.start();
  await createBucket(minio);
  console.log(`MinIO over TLS at ${minio.endpoint}`);
  const env = {
    MINIO_SERVER_HOST: minio.endpoint, MINIO_SERVER_ROOT_USER: minio.user, MINIO_SERVER_ROOT_PASSWORD: minio.password,
    LOGS_BUCKET: minio.bucket, ALLOW_SELF_SIGNED_CERTS: 'false', NODE_EXTRA_CA_CERTS: certFile,
  };
  return { minio, certFile, env };
}
