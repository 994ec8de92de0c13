/**
 * Static bearer tokens, stored only as sha256 hashes in a file (`sha256:<hex> <role>:<consumer>` per line, `#`
 * comments). A token not found makes the file be read again when it changed since, so a rotated Kubernetes Secret
 * (the kubelet rewrites the mounted file) takes effect without a restart, and a known token costs one hash.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parsePrincipal, type Principal } from '../config/auth';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class StaticTokens {
  private byHash = new Map<string, Principal>();
  private version = '';

  constructor(private readonly file: string) {
    this.reload();
  }

  /** The principal of `token`, or undefined when no line holds its hash. */
  lookup(token: string): Principal | undefined {
    const hash = hashToken(token);
    return this.find(hash) ?? (this.reload() ? this.find(hash) : undefined);
  }

  /** The names of every principal the file holds now (read again when it changed). */
  names(): Set<string> {
    this.reload();
    return new Set([...this.byHash.values()].map((p) => p.consumer));
  }

  // Looking up the hash (not the token) leaks nothing useful through timing: a hash's prefix does not give a token.
  private find(hash: string): Principal | undefined {
    return this.byHash.get(hash);
  }

  /** Reads the file again when its size or time changed; true when it did. A bad line fails loudly, naming the line. */
  private reload(): boolean {
    const stat = statSync(this.file);
    const version = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    if (version === this.version) return false;
    const byHash = new Map<string, Principal>();
    readFileSync(this.file, 'utf8').split(/\r?\n/).forEach((raw, index) => {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) return;
      const [hash, who, extra] = line.split(/\s+/);
      const principal = who ? parsePrincipal(who) : undefined;
      if (!/^sha256:[0-9a-f]{64}$/.test(hash ?? '') || !principal || extra !== undefined) {
        throw new Error(`${this.file} line ${index + 1} must read "sha256:<64 hex digits> consumer:<name>" or "… operator:<name>"`);
      }
      byHash.set(hash!.slice('sha256:'.length), principal);
    });
    this.byHash = byHash;
    this.version = version;
    return true;
  }
}
