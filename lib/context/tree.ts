import { ContextRejectedError, invalidArchive, quote } from './errors';
import type { TarHeader } from './tar-entries';
import { ancestorsOf, normalizeContextPath, relativeTargetClimbsAboveRoot } from './paths';

/** PATH_MAX on Linux: longer names cannot be created anyway, and the cap keeps the tree's memory bounded. */
const MAX_NAME_BYTES = 4096;
/** Mode of folders that the archive implies (a/b/file) without listing them. */
export const IMPLIED_DIRECTORY_MODE = 0o755;

type NodeKind = 'directory' | 'file' | 'symlink';

type EntryShape =
  | { kind: 'directory'; mode: number; existed: boolean }
  | { kind: 'file'; mode: number }
  /** `target` is the raw link target. */
  | { kind: 'symlink'; target: string }
  /** `target` is the normalized path of the earlier file. */
  | { kind: 'hardlink'; target: string };

export type AdmittedEntry = EntryShape & {
  /** Normalized path inside the context; '' is the root. */
  path: string;
  /** Folders above `path` that no earlier entry created, outermost first. */
  impliedDirectories: string[];
};

/**
 * The context as seen so far. Each tar entry is admitted in archive order, so every rule that mentions
 * "earlier" entries (hard links, paths through symlinks) is checked against exactly what precedes it.
 *
 * A path may appear twice only as a directory both times. Any other repeat, including a regular file
 * listed twice, is refused: tar lets the later copy win, and refusing keeps inspection and extraction
 * (which never overwrites) agreeing on which bytes are in the context.
 */
export class ContextTree {
  readonly files = new Set<string>();
  readonly symlinks = new Map<string, string>();
  entries = 0;
  private readonly nodes = new Map<string, NodeKind>([['', 'directory']]);

  constructor(private readonly maxEntries: number) {}

  admit(header: TarHeader): AdmittedEntry {
    this.countEntry(header.name);
    const path = entryPath(header.name);
    const impliedDirectories = this.checkAncestors(header.name, path);
    const entry: AdmittedEntry = { ...this.describe(header, path), path, impliedDirectories };
    this.record(entry);
    return entry;
  }

  private countEntry(name: string): void {
    if (++this.entries <= this.maxEntries) return;
    throw new ContextRejectedError(
      'context_too_many_entries',
      `the archive has more than ${this.maxEntries} entries; remove files the build does not need (a .dockerignore helps) or raise the entry limit`,
      name,
    );
  }

  /** Returns the ancestors that do not exist yet; refuses paths that go through a symlink or a file. */
  private checkAncestors(name: string, path: string): string[] {
    const implied: string[] = [];
    for (const ancestor of ancestorsOf(path)) {
      const kind = this.nodes.get(ancestor);
      if (kind === undefined) implied.push(ancestor);
      else if (kind === 'symlink') {
        throw new ContextRejectedError(
          'context_path_through_link',
          `entry ${quote(name)} is placed inside ${quote(ancestor)}, which an earlier entry made a symlink; archive entries must not be written through symlinks, so store the real folder instead`,
          name,
        );
      } else if (kind === 'file') throw conflict(name, `its parent ${quote(ancestor)} is a file`);
    }
    return implied;
  }

  private describe(header: TarHeader, path: string): EntryShape {
    const existing = this.nodes.get(path);
    if (existing !== undefined && !(existing === 'directory' && header.type === 'directory')) {
      throw conflict(header.name, `an earlier entry already has the path ${quote(path || '.')}`);
    }
    const mode = header.mode & 0o777;
    switch (header.type) {
      case 'directory':
        return { kind: 'directory', mode, existed: existing !== undefined };
      case 'file':
        return { kind: 'file', mode };
      case 'symlink':
        return { kind: 'symlink', target: symlinkTarget(header.name, path, header.linkname) };
      case 'link':
        return { kind: 'hardlink', target: this.hardlinkTarget(header.name, header.linkname) };
      default:
        throw new ContextRejectedError(
          'context_special_file',
          `entry ${quote(header.name)} is a ${header.type ?? 'non-standard'} entry; a build context may only hold regular files, folders and links, so leave devices, FIFOs and sockets out of the archive`,
          header.name,
        );
    }
  }

  private hardlinkTarget(name: string, linkname: string | null | undefined): string {
    const target = normalizeContextPath(linkname ?? '');
    if (target !== undefined && this.nodes.get(target) === 'file') return target;
    throw new ContextRejectedError(
      'context_hardlink_invalid',
      `hard link ${quote(name)} points at ${quote(linkname ?? '')}, which is not a regular file listed earlier in the archive; hard links may only point at earlier files, so store a copy of the file instead`,
      name,
    );
  }

  private record(entry: AdmittedEntry): void {
    for (const directory of entry.impliedDirectories) this.nodes.set(directory, 'directory');
    switch (entry.kind) {
      case 'directory':
        this.nodes.set(entry.path, 'directory');
        break;
      case 'file':
      case 'hardlink':
        this.nodes.set(entry.path, 'file');
        this.files.add(entry.path);
        break;
      case 'symlink':
        this.nodes.set(entry.path, 'symlink');
        this.symlinks.set(entry.path, entry.target);
        break;
    }
  }
}

/** Checks an entry name and returns its normalized path. */
function entryPath(name: string): string {
  checkName(name, 'name', name);
  if (name.startsWith('/')) {
    throw new ContextRejectedError(
      'context_absolute_path',
      `entry ${quote(name)} has an absolute path; archive paths must be relative to the context root, so create the archive from inside the context folder (tar -C <dir> .)`,
      name,
    );
  }
  const path = normalizeContextPath(name);
  if (path === undefined) {
    throw new ContextRejectedError(
      'context_path_traversal',
      `entry ${quote(name)} climbs out of the context with '..'; archive paths must stay inside the context root, so create the archive from inside the context folder (tar -C <dir> .)`,
      name,
    );
  }
  return path;
}

function symlinkTarget(name: string, path: string, linkname: string | null | undefined): string {
  const target = linkname ?? '';
  checkName(target, 'symlink target', name);
  if (!target.startsWith('/') && relativeTargetClimbsAboveRoot(path, target)) {
    throw new ContextRejectedError(
      'context_link_escape',
      `symlink ${quote(name)} points at ${quote(target)}, which leads outside the context; links must point at something inside the context root, so store the file the link points at instead`,
      name,
    );
  }
  return target;
}

/** Refuses names no file system accepts: empty, with a NUL byte, or longer than PATH_MAX. */
function checkName(value: string, what: string, name: string): void {
  const problem =
    value === ''
      ? 'is empty'
      : value.includes('\0')
        ? 'contains a NUL byte'
        : Buffer.byteLength(value) > MAX_NAME_BYTES
          ? `is longer than ${MAX_NAME_BYTES} bytes`
          : undefined;
  if (problem !== undefined) throw invalidArchive(`the ${what} of entry ${quote(name)} ${problem}`, name);
}

function conflict(name: string, reason: string): ContextRejectedError {
  return new ContextRejectedError(
    'context_duplicate_entry',
    `entry ${quote(name)} clashes with the archive's earlier entries: ${reason}; list each path once (only folders may repeat)`,
    name,
  );
}
