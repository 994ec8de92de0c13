/**
 * Removal of scratch trees written from what consumers send: an extracted context, a scanner's shared folder. Such
 * a tree may hold folders without write permission (a context's `0555` folder keeps its mode when extracted), and a
 * process that is not root, as the service's image runs, cannot delete what is inside them: a plain recursive `rm`
 * fails with EACCES and leaves the tree behind.
 */
import { chmod, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Removes `path` and everything under it (nothing when it is not there). When the removal is refused for want of
 * permission, the tree's folders are made writable by their owner, this process, and it is removed again. Symbolic
 * links are removed, never followed.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await openFolders(path);
    await rm(path, { recursive: true, force: true });
  }
}

/** Gives the owner read, write and search permission on every folder of the tree, top down, so each can be entered. */
async function openFolders(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat?.isDirectory()) return;
  if ((stat.mode & 0o700) !== 0o700) await chmod(path, (stat.mode & 0o7777) | 0o700);
  for (const name of await readdir(path)) await openFolders(join(path, name));
}
