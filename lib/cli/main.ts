#!/usr/bin/env node
/**
 * `ibs`, the Image Build Service's command-line client. Exit codes: 0 the command (or the build) succeeded; 1 the
 * build failed or was cancelled; 2 the command line was wrong; 3 the API refused the request; 4 the API could not
 * be reached or failed itself. Messages are the API's own; no stack traces.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiCallError, callJson, callText, followLog, isTerminal, submitUpload, type ApiTarget, type Build } from './client';
import { PackError, packContext, pathInside } from './pack';
import { progressReporter } from './progress';
import { splitTargets, UsageError } from './targets';

const USAGE = `Usage: ibs <command> [options]

Commands:
  build DIR -t IMAGE [-t IMAGE...] [--file PATH] [--build-arg K=V]... [--label K=V]... [--platform P]...
        [--target STAGE] [--engine buildkit|kaniko] [--no-follow] [--quiet]
                              pack DIR (honouring .dockerignore), upload it, follow the log; prints the digest
  push-archive FILE -t IMAGE [-t IMAGE...]
                              push a \`docker save\` tarball or an OCI image layout archive without a build
  copy SRC -t IMAGE [-t IMAGE...]
                              copy an image from its registry to the target
  get ID                      print a build as JSON
  logs ID [--follow]          print a build's log (follow it live with --follow)
  cancel ID | retry ID        cancel a running build, or run a failed one again
  list [--status S] [--image I] [--consumer C] [--since TIME] [--limit N]
                              a page of builds, newest first (--since: created at or after an RFC 3339 time)

Options for every command:
  --api URL      the API's address (default: $IBS_API_URL, else http://127.0.0.1:8080)
  --token TOKEN  the bearer token (default: $IBS_TOKEN)
`;

const OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  tag: { type: 'string', short: 't', multiple: true },
  file: { type: 'string', short: 'f' },
  'build-arg': { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  platform: { type: 'string', multiple: true },
  target: { type: 'string' },
  engine: { type: 'string' },
  'no-follow': { type: 'boolean' },
  follow: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  status: { type: 'string' },
  image: { type: 'string' },
  consumer: { type: 'string' },
  since: { type: 'string' },
  limit: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal (a live progress bar) or not (one line at the start and the end). */
  interactive: boolean;
}

function keyValues(values: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const result: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got "${value}"`);
    result[value.slice(0, at)] = value.slice(at + 1);
  }
  return result;
}

function oneArgument(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected one ${what}, got ${positionals.length}`);
  return positionals[0]!;
}

/** Prints the outcome of a finished build; returns the exit code. */
function reportOutcome(io: Io, build: Build): number {
  if (build.status === 'succeeded') {
    io.err(`build ${build.id} succeeded: ${build.image}@${build.digest}\n`);
    io.out(`${build.digest}\n`);
    return 0;
  }
  const why = build.error ? `${build.error.code}: ${build.error.message}` : 'no reason recorded';
  io.err(`build ${build.id} ${build.status}: ${why}\n`);
  return 1;
}

/** Follows the log (unless told not to), then reads the build's final record. */
async function finish(io: Io, api: ApiTarget, build: Build, follow: boolean, quiet: boolean): Promise<number> {
  if (build.reusedFrom) io.err(`identical to build ${build.reusedFrom}: reused its result\n`);
  if (!follow) {
    io.out(`${build.id}\n`);
    return 0;
  }
  if (!isTerminal(build.status)) await followLog(api, build.id, quiet ? () => undefined : io.err);
  let final = await callJson<Build>(api, 'GET', `/v1/builds/${build.id}`);
  // The log's end event and the record's final status are written a moment apart.
  for (let i = 0; i < 20 && !isTerminal(final.status); i++) {
    await new Promise((r) => setTimeout(r, 500));
    final = await callJson<Build>(api, 'GET', `/v1/builds/${build.id}`);
  }
  return reportOutcome(io, final);
}

async function upload(io: Io, api: ApiTarget, part: 'context' | 'image', file: string, spec: unknown): Promise<Build> {
  const progress = progressReporter(io.err, io.interactive, part === 'context' ? 'uploading context' : 'uploading image');
  try {
    return await submitUpload(api, { spec, part, file, onProgress: progress.update });
  } finally {
    progress.done();
  }
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

async function build(io: Io, api: ApiTarget, values: Values, positionals: string[]): Promise<number> {
  const dir = oneArgument(positionals, 'context folder');
  const spec = {
    ...splitTargets(values.tag),
    dockerfile: values.file ? pathInside(dir, values.file) : undefined,
    buildArgs: keyValues(values['build-arg'], '--build-arg'),
    labels: keyValues(values.label, '--label'),
    platforms: values.platform,
    target: values.target,
    engine: values.engine,
  };
  const scratch = await mkdtemp(join(tmpdir(), 'ibs-context-'));
  try {
    const archive = join(scratch, 'context.tar.gz');
    const packed = await packContext(dir, archive, {
      dockerfile: spec.dockerfile,
      onSkipped: (path, why) => io.err(`skipping ${path}: ${why}\n`),
    });
    io.err(`packed ${packed.entries.length} entries from ${dir}\n`);
    const accepted = await upload(io, api, 'context', archive, spec);
    io.err(`build ${accepted.id} accepted (${accepted.status})\n`);
    return await finish(io, api, accepted, !values['no-follow'], values.quiet ?? false);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function run(io: Io, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    io.out(USAGE);
    return command || values.help ? 0 : 2;
  }
  const api: ApiTarget = { url: values.api ?? io.env.IBS_API_URL ?? 'http://127.0.0.1:8080', token: values.token ?? io.env.IBS_TOKEN };
  const follow = !values['no-follow'];
  switch (command) {
    case 'build':
      return build(io, api, values, rest);
    case 'push-archive': {
      const accepted = await upload(io, api, 'image', oneArgument(rest, 'archive file'), splitTargets(values.tag));
      io.err(`build ${accepted.id} accepted (${accepted.status})\n`);
      return finish(io, api, accepted, follow, values.quiet ?? false);
    }
    case 'copy': {
      const accepted = await callJson<Build>(api, 'POST', '/v1/builds', { ...splitTargets(values.tag), sourceImage: oneArgument(rest, 'source image') });
      io.err(`build ${accepted.id} accepted (${accepted.status})\n`);
      return finish(io, api, accepted, follow, values.quiet ?? false);
    }
    case 'get':
      io.out(`${JSON.stringify(await callJson(api, 'GET', `/v1/builds/${encodeURIComponent(oneArgument(rest, 'build id'))}`), null, 2)}\n`);
      return 0;
    case 'logs': {
      const id = encodeURIComponent(oneArgument(rest, 'build id'));
      if (values.follow) {
        await followLog(api, id, io.out);
        return 0;
      }
      io.out(await callText(api, `/v1/builds/${id}/logs`));
      return 0;
    }
    case 'cancel':
    case 'retry': {
      const result = await callJson<Build>(api, 'POST', `/v1/builds/${encodeURIComponent(oneArgument(rest, 'build id'))}/${command}`);
      io.out(`${result.id} ${result.status}\n`);
      return 0;
    }
    case 'list': {
      const query = new URLSearchParams();
      for (const key of ['status', 'image', 'consumer', 'since', 'limit'] as const) if (values[key]) query.set(key, values[key]);
      const page = await callJson<{ items: Build[]; nextCursor: string | null }>(api, 'GET', `/v1/builds?${query}`);
      for (const b of page.items) io.out(`${b.id}  ${b.status.padEnd(9)}  ${String(b.createdAt ?? '')}  ${b.image}\n`);
      if (page.nextCursor) io.err(`more builds: add --limit, or ask the API with cursor=${page.nextCursor}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function runtimeError(io: Io, err: unknown): number {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    io.err(`ibs: ${(err as Error).message}\nRun "ibs --help" for usage.\n`);
    return 2;
  }
  if (err instanceof PackError) {
    io.err(`ibs: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiCallError) {
    io.err(`ibs: ${err.code}: ${err.message}\n`);
    return err.status !== undefined && err.status < 500 ? 3 : 4;
  }
  io.err(`ibs: ${(err as Error).message ?? String(err)}\n`);
  return 4;
}

/** Runs one command line; returns the exit code. Exported so tests and wrappers can run it in-process. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    return await run(io, argv);
  } catch (err) {
    return runtimeError(io, err);
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
    interactive: process.stderr.isTTY === true,
  }).then((code) => {
    process.exitCode = code;
  });
}
