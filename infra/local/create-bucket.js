// Creates LOGS_BUCKET in the local MinIO if it is missing (the stack's settings come from the environment).
const { S3Client, CreateBucketCommand, HeadBucketCommand } = require('@aws-sdk/client-s3');

async function main() {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: process.env.MINIO_SERVER_HOST,
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER, secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD },
  });
  const Bucket = process.env.LOGS_BUCKET || 'data';
  try {
    await client.send(new HeadBucketCommand({ Bucket }));
  } catch {
    await client.send(new CreateBucketCommand({ Bucket }));
  }
}

main().catch((err) => {
  console.error(`could not create bucket: ${err.message}`);
  process.exit(1);
});
