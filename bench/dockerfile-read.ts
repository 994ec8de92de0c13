/**
 * The worker's policy check reading a build's Dockerfile from its stored context (`checkBuildPolicy`, before every
 * build): `readContextFileThroughLinks` over the stack's MinIO, for each checkout in READ_DIRS (default: this one;
 * another is a `git worktree` of another commit), side by side in one process, alternating which goes first. The
 * context is a tar.gz of SIZE_MIB (argv[2], default 200) of text-like files, once with the Dockerfile as its first
 * entry and once as its last (`tar` of a folder may put it anywhere). Prints each checkout's median per position and
 * the ratio of the last checkout to the first.
 */
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { loadConfig } from '../lib/config';
import { createObjectStore } from '../lib/storage';
import { tarOf } from '../test/support/archives';
import { median } from './stats';
import { textFiles } from './text-files';

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const READ_DIRS = (process.env.READ_DIRS ?? '.').split(',');

type Reader = typeof import('../lib/context/read-file').readContextFileThroughLinks;

/** SIZE_MIB of text-like files, as a tar.gz, with the Dockerfile first or last. */
async function contextOf(dockerfileFirst: boolean): Promise<Buffer> {
  const files = Object.entries(textFiles(SIZE_MIB)).map(([name, body]) => ({ name, body }));
  const dockerfile = { name: 'Dockerfile', body: 'FROM scratch\nCOPY src /src\n' };
  return gzipSync(await tarOf(dockerfileFirst ? [dockerfile, ...files] : [...files, dockerfile]));
}

async function main(): Promise<void> {
  const store = createObjectStore(loadConfig());
  const readers = await Promise.all(
    READ_DIRS.map(async (dir) => ({ dir, read: ((await import(resolve(dir, 'lib/context/read-file.ts'))) as { readContextFileThroughLinks: Reader }).readContextFileThroughLinks })),
  );
  const positions = [
    { name: 'Dockerfile first', key: `bench/dockerfile-read-first-${process.pid}`, body: await contextOf(true) },
    { name: 'Dockerfile last', key: `bench/dockerfile-read-last-${process.pid}`, body: await contextOf(false) },
  ];
  const took = new Map<string, number[]>();
  try {
    for (const p of positions) {
      await store.put(p.key, Readable.from([p.body]), { contentType: 'application/gzip' });
      console.log(`${p.name}: a tar.gz of ${(p.body.length / MiB).toFixed(0)} MiB (${SIZE_MIB} MiB unpacked)`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...readers].reverse() : readers;
      for (const p of positions) {
        for (const { dir, read } of order) {
          const started = performance.now();
          const text = await read(async () => (await store.get(p.key))!, 'Dockerfile');
          const ms = performance.now() - started;
          if (text !== 'FROM scratch\nCOPY src /src\n') throw new Error(`${dir} read ${JSON.stringify(text)}`);
          took.set(`${dir} ${p.name}`, [...(took.get(`${dir} ${p.name}`) ?? []), ms]);
          console.log(`round ${round + 1}/${ROUNDS} ${dir} ${p.name}: ${ms.toFixed(0)} ms`);
        }
      }
    }
    for (const p of positions) {
      for (const { dir } of readers) console.log(`${dir} ${p.name}: median ${median(took.get(`${dir} ${p.name}`)!).toFixed(0)} ms`);
      const [first, last] = [readers[0]!, readers[readers.length - 1]!];
      if (first !== last) {
        const ratio = median(took.get(`${last.dir} ${p.name}`)!) / median(took.get(`${first.dir} ${p.name}`)!);
        console.log(`${p.name}: ratio=${ratio.toFixed(3)} (${last.dir} / ${first.dir})`);
      }
    }
  } finally {
    for (const p of positions) await store.delete(p.key).catch(() => undefined);
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
