/** Listing a bucket in tests: every page, since one ListObjectsV2 call stops at 1000 keys. */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/** A client of the stack's MinIO as its root user: listing is not part of the ObjectStore port. */
export function stackMinioClient(): S3Client {
  return new S3Client({
    endpoint: process.env.MINIO_SERVER_HOST,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
  });
}

export async function listKeys(s3: S3Client, bucket: string, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}
