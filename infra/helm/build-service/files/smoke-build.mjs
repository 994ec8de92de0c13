// `helm test <release>`: submits a tiny build (FROM scratch, one COPY: nothing to pull) to the release's API, waits
// for it and exits 0 only when it succeeded and pushed. Plain Node.js without packages, run in the service image.
// IBS_API_URL, IBS_TEST_IMAGE (repository:tag), IBS_TEST_TIMEOUT_SECONDS; IBS_API_TOKEN, when set, is sent as
// `Authorization: Bearer <token>` (values: tests.tokenSecret).
/* global Buffer, fetch, FormData, Blob, console, setTimeout, process */
import { gzipSync } from 'node:zlib';

const api = process.env.IBS_API_URL;
const image = process.env.IBS_TEST_IMAGE;
const deadline = Date.now() + Number(process.env.IBS_TEST_TIMEOUT_SECONDS ?? 600) * 1000;
const headers = { 'x-consumer': 'helm-test' };
if (process.env.IBS_API_TOKEN) headers.authorization = `Bearer ${process.env.IBS_API_TOKEN}`;

/** A gzipped ustar archive of regular files. */
function tarGz(files) {
  const blocks = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    const header = Buffer.alloc(512);
    const field = (value, offset, length) => header.write(value, offset, length, 'ascii');
    field(name, 0, 100);
    field('0000644\0', 100, 8);
    field('0000000\0', 108, 8);
    field('0000000\0', 116, 8);
    field(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    field(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 12);
    field('        ', 148, 8);
    field('0', 156, 1);
    field('ustar\0', 257, 6);
    field('00', 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

async function call(path, init = {}) {
  const res = await fetch(`${api}${path}`, { ...init, headers: { ...headers, ...init.headers } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${text}`);
  return text;
}

const form = new FormData();
// A real build every time (never answered by an earlier identical one), moving the test image's own tag.
form.append('spec', JSON.stringify({ image, overwrite: true, reuse: false, metadata: { source: 'helm test' } }));
form.append('context', new Blob([tarGz({
  Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n',
  'hello.txt': `helm test of ${image}\n`,
})]), 'context.tar.gz');
const { id } = JSON.parse(await call('/v1/builds', { method: 'POST', body: form }));
console.log(`build ${id} submitted to ${api}: ${image}`);
let build;
do {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  build = JSON.parse(await call(`/v1/builds/${id}`));
} while (!['succeeded', 'failed', 'cancelled'].includes(build.status) && Date.now() < deadline);
if (build.status !== 'succeeded') {
  console.log(await call(`/v1/builds/${id}/logs`).catch((err) => String(err)));
  console.error(`build ${id} ended ${build.status}: ${JSON.stringify(build.error)}`);
  process.exit(1);
}
console.log(`build ${id} succeeded: ${image}@${build.digest}`);
