import { constants } from 'node:fs';
import { chmod, link, mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { IMPLIED_DIRECTORY_MODE, type AdmittedEntry } from './tree';

/** Creates the file and refuses to open anything already there, a symlink above all. */
const CREATE_NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Folders stay writable for us until the end, or a read-only folder would block its own contents. */
const DIRECTORY_MODE_WHILE_WRITING = 0o700;

/**
 * Writes admitted entries under `root`. Safety comes from two layers: the tree refuses every entry that
 * would go through a symlink or replace an existing path, and here nothing is opened in a way that
 * follows a link or reuses a path (O_EXCL|O_NOFOLLOW, mkdir, symlink and link all fail on an existing
 * name). Paths are normalized and free of '..', so join() keeps them under `root`.
 */
export class ContextWriter {
  /** Final folder modes, applied once every entry is written. */
  private readonly directoryModes = new Map<string, number>();

  constructor(private readonly root: string) {}

  async write(entry: AdmittedEntry, body: AsyncIterable<Buffer>): Promise<void> {
    for (const directory of entry.impliedDirectories) await this.createDirectory(directory, IMPLIED_DIRECTORY_MODE);
    switch (entry.kind) {
      case 'directory':
        await this.writeDirectory(entry.path, entry.mode, entry.existed);
        break;
      case 'file':
        await writeNewFile(this.resolve(entry.path), body, entry.mode);
        break;
      case 'symlink':
        await symlink(entry.target, this.resolve(entry.path));
        break;
      case 'hardlink':
        // link(2) does not follow a symlink at the source, and the tree vouched that it is a file we wrote.
        await link(this.resolve(entry.target), this.resolve(entry.path));
        break;
    }
    // Only regular files carry data, but the parser waits until every body has been read.
    if (entry.kind !== 'file') await skipEntryBody(body);
  }

  /** Applies folder modes deepest first, so closing a folder never blocks reaching the ones inside it. */
  async finish(): Promise<void> {
    const deepestFirst = [...this.directoryModes].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [path, mode] of deepestFirst) await chmod(this.resolve(path), mode);
  }

  private async writeDirectory(path: string, mode: number, existed: boolean): Promise<void> {
    // The root belongs to the caller, so its entry ('./') changes nothing.
    if (path === '') return;
    if (existed) this.directoryModes.set(path, mode);
    else await this.createDirectory(path, mode);
  }

  private async createDirectory(path: string, mode: number): Promise<void> {
    await mkdir(this.resolve(path), DIRECTORY_MODE_WHILE_WRITING);
    this.directoryModes.set(path, mode);
  }

  private resolve(path: string): string {
    return join(this.root, path);
  }
}

/** Writes a file that must not exist yet; `mode` is set on the open handle, so the umask does not apply. */
export async function writeNewFile(path: string, body: AsyncIterable<Buffer>, mode: number): Promise<void> {
  const handle = await open(path, CREATE_NEW_FILE, 0o600);
  try {
    for await (const chunk of body) await writeFully(handle, chunk);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

async function writeFully(handle: FileHandle, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await handle.write(chunk, offset);
    offset += bytesWritten;
  }
}

/** Reads an entry body to its end without keeping it. */
export async function skipEntryBody(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of body) void chunk;
}
