/**
 * The S3 adapter putting one object, a file in parts and a stream in parts, in a process of its own: a test starts it
 * with NODE_EXTRA_CA_CERTS, which Node reads only at start-up, so that its self-signed certificate is verified like
 * a CA's. The store is configured from the environment as the service's is; the bodies are random bytes whose
 * SHA-256 it prints, one JSON line, before it exits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../lib/config';
import { createObjectStore } from '../../lib/storage';

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function main(): Promise<void> {
  const store = createObjectStore(loadConfig(process.env));
  const dir = await mkdtemp(join(tmpdir(), 'ibs-put-objects-'));
  try {
    const small = randomBytes(64 * 1024);
    const file = randomBytes(17 * MiB);
    const stream = randomBytes(9 * MiB);
    await writeFile(join(dir, 'parts.bin'), file);
    await store.put('contexts/small.tar', small);
    await store.putFile('contexts/file.tar', join(dir, 'parts.bin'));
    await store.put('contexts/stream.tar', Readable.from([stream]));
    console.log(JSON.stringify({ 'contexts/small.tar': sha256(small), 'contexts/file.tar': sha256(file), 'contexts/stream.tar': sha256(stream) }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
