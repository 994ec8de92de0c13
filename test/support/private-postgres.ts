/**
 * A PostgreSQL server of a test's own, for tests that stop or crash the database: the shared one on 55432 serves
 * every other suite and must never be restarted. Debian's binaries, run as the `postgres` user (PostgreSQL refuses
 * root), data under /tmp, on a free port, as infra/local/start.sh starts the shared one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, restartablePort } from './ports';

export { freePort };

const PG_BIN = join(
  '/usr/lib/postgresql',
  readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b)).at(-1) ?? '',
  'bin',
);


function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

export class PrivatePostgres {
  private server?: ChildProcess;

  private constructor(
    readonly port: number,
    readonly user: string,
    readonly dataDir: string,
  ) {}

  static async create(user = 'ibs'): Promise<PrivatePostgres> {
    const dataDir = mkdtempSync(join(tmpdir(), 'ibs-private-pg-'));
    const { uid, gid } = postgresUser();
    chownSync(dataDir, uid, gid);
    chmodSync(dataDir, 0o700);
    // trust: the server listens on loopback only and lives as long as the test.
    execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'initdb'), '-D', dataDir, '-U', user, '-A', 'trust'], { stdio: 'ignore' });
    // Crashed and started again while pools keep reconnecting.
    const pg = new PrivatePostgres(await restartablePort(), user, dataDir);
    await pg.start();
    return pg;
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const server = spawn(
      'runuser',
      ['-u', 'postgres', '--', join(PG_BIN, 'postgres'), '-D', this.dataDir, '-h', '127.0.0.1', '-p', String(this.port), '-k', this.dataDir, '-c', 'fsync=off'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let output = '';
    server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    this.server = server;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`private PostgreSQL exited with ${server.exitCode}:\n${output}`);
      try {
        execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'pg_isready'), '-q', '-h', '127.0.0.1', '-p', String(this.port)]);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`private PostgreSQL did not accept connections within 30 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Kills the postmaster (SIGKILL), as a crash or an OOM kill would: its backends end every connection with
   * "terminating connection due to unexpected postmaster exit". Resolves once no server process is left.
   */
  async crash(): Promise<void> {
    const postmasterPid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmasterPid, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    while (this.processesLeft() > 0) {
      if (Date.now() > deadline) throw new Error('the crashed PostgreSQL left processes behind for 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise<void>((resolve) => (this.server?.exitCode !== null ? resolve() : this.server.once('exit', () => resolve())));
  }

  /** Server processes still running in this data folder (postgres chdirs there; backends outlive the postmaster briefly). */
  private processesLeft(): number {
    return readdirSync('/proc').filter((pid) => {
      if (!/^\d+$/.test(pid)) return false;
      try {
        return readlinkSync(`/proc/${pid}/cwd`) === this.dataDir;
      } catch {
        return false; // the process ended meanwhile, or is not ours to read
      }
    }).length;
  }

  async stop(): Promise<void> {
    if (this.server && this.server.exitCode === null) {
      const exited = new Promise((resolve) => this.server!.once('exit', resolve));
      execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl'), '-D', this.dataDir, '-m', 'immediate', 'stop'], { stdio: 'ignore' });
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
