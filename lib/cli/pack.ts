/**
 * Packs a build context folder the way BuildKit reads one: `.dockerignore` (or `<Dockerfile>.dockerignore` beside
 * the Dockerfile, which takes precedence, as in BuildKit) decides what is sent, with `!` exceptions able to bring
 * back files below an ignored folder. The Dockerfile itself is always sent: the service reads it from the context.
 *
 * The archive is deterministic for an unchanged folder (sorted entries, owner 0:0, no user or group names, gzip
 * without a timestamp), so sending the same folder twice gives the same context digest and the service can reuse
 * the earlier build. Links are archived as links, never followed; sockets, FIFOs and devices are skipped.
 */
import ignore from '@balena/dockerignore';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join, posix, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, constants as zlib } from 'node:zlib';
import { pack as tarPack, type Header, type Pack } from 'tar-stream';

export interface PackOptions {
  /** The Dockerfile's path inside the folder (default `Dockerfile`). */
  dockerfile?: string;
  /** Called with each skipped special file, for a warning. */
  onSkipped?: (path: string, why: string) => void;
}

export interface PackedContext {
  /** Paths sent, in archive order (folders end with `/`). */
  entries: string[];
}

export class PackError extends Error {}

interface Entry {
  name: string;
  header: Partial<Header> & { name: string };
  /** Absolute path of a regular file's content. */
  source?: string;
}

/** Reads the ignore rules that apply: `<Dockerfile>.dockerignore` beside the Dockerfile, else `.dockerignore`. */
async function ignoreRules(dir: string, dockerfile: string): Promise<string> {
  for (const candidate of [join(dir, `${dockerfile}.dockerignore`), join(dir, '.dockerignore')]) {
    try {
      return await readFile(candidate, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return '';
}

/** Lists what is sent from `dir`, in archive order. */
export async function contextEntries(dir: string, options: PackOptions = {}): Promise<Entry[]> {
  const root = resolve(dir);
  const dockerfile = posix.normalize((options.dockerfile ?? 'Dockerfile').split(sep).join('/'));
  if (dockerfile.startsWith('../') || posix.isAbsolute(dockerfile)) {
    throw new PackError(`the Dockerfile (${dockerfile}) must be inside the context folder ${dir}`);
  }
  const folder = await stat(root).catch(() => undefined);
  if (!folder?.isDirectory()) throw new PackError(`${dir} is not a folder; give the build context's folder`);
  const rulesText = await ignoreRules(root, dockerfile);
  const rules = ignore().add(rulesText);
  // With no `!` exception, an ignored folder is skipped whole; with one, its files are checked one by one.
  const hasExceptions = rulesText.split('\n').some((line) => line.trim().startsWith('!'));
  const kept = (path: string) => path === dockerfile || !rules.ignores(path);

  const entries: Entry[] = [];
  const walk = async (absolute: string, path: string): Promise<boolean> => {
    const names = (await readdir(absolute)).sort();
    let keptAny = false;
    for (const name of names) {
      const childPath = path ? `${path}/${name}` : name;
      const childAbsolute = join(absolute, name);
      const stat = await lstat(childAbsolute);
      const base = { mode: stat.mode & 0o7777, mtime: new Date(Math.floor(stat.mtimeMs / 1000) * 1000), uid: 0, gid: 0, uname: '', gname: '' };
      if (stat.isDirectory()) {
        const ignored = !kept(childPath);
        if (ignored && !hasExceptions && !dockerfile.startsWith(`${childPath}/`)) continue;
        const at = entries.length;
        const childrenKept = await walk(childAbsolute, childPath);
        if (!ignored || childrenKept) {
          entries.splice(at, 0, { name: `${childPath}/`, header: { ...base, name: `${childPath}/`, type: 'directory' } });
          keptAny = true;
        }
      } else if (!kept(childPath)) {
        continue;
      } else if (stat.isFile()) {
        entries.push({ name: childPath, header: { ...base, name: childPath, type: 'file', size: stat.size }, source: childAbsolute });
        keptAny = true;
      } else if (stat.isSymbolicLink()) {
        const linkname = await readlink(childAbsolute);
        entries.push({ name: childPath, header: { ...base, name: childPath, type: 'symlink', linkname, size: 0 } });
        keptAny = true;
      } else {
        options.onSkipped?.(childPath, 'not a regular file, folder or link');
      }
    }
    return keptAny;
  };
  await walk(root, '');
  if (!entries.some((e) => e.name === dockerfile)) {
    throw new PackError(`no Dockerfile at ${join(dir, dockerfile)}; pass --file with its path inside the folder`);
  }
  return entries;
}

function addEntry(archive: Pack, entry: Entry): Promise<void> {
  return new Promise((done, fail) => {
    const sink = archive.entry(entry.header as Header, (err) => (err ? fail(err) : done()));
    if (!entry.source) return;
    const content = createReadStream(entry.source);
    content.on('error', fail);
    content.pipe(sink);
  });
}

/**
 * Writes the folder as a tar.gz to `out`. A file that changes size while it is read fails the pack (tar-stream
 * refuses the size mismatch) rather than sending a half-written file.
 */
export async function packContext(dir: string, out: string, options: PackOptions = {}): Promise<PackedContext> {
  const entries = await contextEntries(dir, options);
  const archive = tarPack();
  const written = pipeline(archive, createGzip({ level: zlib.Z_BEST_SPEED }), createWriteStream(out, { mode: 0o600 }));
  try {
    for (const entry of entries) await addEntry(archive, entry);
    archive.finalize();
  } catch (err) {
    archive.destroy(err as Error);
  }
  await written;
  return { entries: entries.map((e) => e.name) };
}

/** The path of `file` relative to `dir` with forward slashes, for `--file` given as a path from the shell. */
export function pathInside(dir: string, file: string): string {
  return relative(resolve(dir), resolve(file)).split(sep).join('/');
}
