/**
 * infra/images: the BuildKit image-builder is built offline by the project's tooling and pushed to the local
 * registry with the pinned engines; every Dockerfile passes BuildKit's checks (which do catch a bad one); the
 * context-fetching entrypoint the pods run downloads and unpacks a real context from MinIO with a presigned URL.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REGISTRY, blobOf, ensureBaseImage, imageFiles, manifestOf } from '../support/registry';
import { objectStore, uploadContext } from './support/cluster';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const BUILD_SH = join(ROOT, 'infra/images/build.sh');
const scratch: string[] = [];

afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-images-'));
  scratch.push(dir);
  return dir;
}

describe('infra/images', () => {
  it('builds the BuildKit image-builder from scratch and pushes it with BuildKit >= 0.28.1, runc >= 1.1.12 and the rootless tools', async () => {
    await run('bash', [BUILD_SH, 'build'], { timeout: 600_000, maxBuffer: 64 << 20 });
    const { manifest } = await manifestOf('ibs/image-builder', '0.28.1');
    const config = JSON.parse((await blobOf('ibs/image-builder', manifest.config.digest)).toString('utf8')) as {
      config: { Labels: Record<string, string>; User: string; Entrypoint: string[] };
    };
    expect(config.config.Labels['io.image-build-service.buildkit.version']).toBe('v0.28.1');
    expect(config.config.Labels['io.image-build-service.runc.version']).toBe('v1.5.2');
    expect(config.config.User).toBe('1000:1000');
    expect(config.config.Entrypoint).toEqual(['/usr/local/bin/ibs-build']);
    const files = await imageFiles('ibs/image-builder', '0.28.1');
    for (const path of ['usr/local/bin/buildkitd', 'usr/local/bin/buildctl', 'usr/local/bin/runc', 'usr/local/bin/rootlesskit', 'usr/bin/newuidmap', 'usr/bin/newgidmap', 'usr/local/bin/ibs-build', 'usr/local/bin/ibs-fetch-context', 'bin/busybox']) {
      expect(files.has(path), path).toBe(true);
    }
    expect(files.get('etc/subuid')?.toString()).toBe('user:100000:65536\n');
  }, 600_000);

  it('passes BuildKit\'s Dockerfile checks for every image, and the checks fail a Dockerfile that breaks them', async () => {
    await run('bash', [BUILD_SH, 'lint'], { timeout: 120_000 });
    const bad = await tempDir();
    await writeFile(join(bad, 'Dockerfile'), 'FROM scratch AS base\ncopy . /x\n');
    const failure = await run('bash', [BUILD_SH, 'lint', bad], { timeout: 120_000 }).then(() => undefined, (e: { stderr: string }) => e);
    expect(failure?.stderr).toContain('ConsistentInstructionCasing');
  });

  it('ibs-fetch-context downloads and unpacks a context through a presigned URL, and reports an expired one without the URL', async () => {
    const key = await uploadContext({ Dockerfile: 'FROM scratch\n', 'src/app.txt': 'hello' });
    const url = await objectStore().presignGet(key, 60);
    const work = await tempDir();
    const script = join(ROOT, 'infra/images/image-builder/ibs-fetch-context');
    await run('/bin/busybox', ['sh', script], {
      env: { PATH: '/bin:/usr/bin', IBS_CONTEXT_URL: url, IBS_CONTEXT_DIR: join(work, 'context'), IBS_TERMINATION_LOG: join(work, 'unused') },
    });
    expect(await readFile(join(work, 'context/src/app.txt'), 'utf8')).toBe('hello');
    // The downloaded archive is removed once unpacked.
    expect((await readdir(work)).sort()).toEqual(['context']);

    const broken = `${url.split('?')[0]}?X-Amz-Signature=forged`;
    const terminationLog = join(work, 'termination-log');
    const err = await run('/bin/busybox', ['sh', script], {
      env: { PATH: '/bin:/usr/bin', IBS_CONTEXT_URL: broken, IBS_CONTEXT_DIR: join(work, 'again'), IBS_TERMINATION_LOG: terminationLog },
    })
      .then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(22);
    expect(err?.stderr).toContain('could not be downloaded');
    expect(err?.stderr).not.toContain('X-Amz');
    // The pod's termination message is what the executor quotes in context_fetch_failed.
    expect(await readFile(terminationLog, 'utf8')).toContain('could not be downloaded');
  });

  it('ibs-build builds the context with its own BuildKit daemon, pushes by digest and reports the digest', async () => {
    const work = await tempDir();
    const context = join(work, 'context');
    await run('mkdir', ['-p', join(context, 'docker'), join(work, 'run'), join(work, 'docker-config')]);
    await writeFile(join(context, 'docker/Dockerfile'), 'FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /\n');
    await writeFile(join(context, 'hello.txt'), 'hi\n');
    await writeFile(join(work, 'docker-config/config.json'), '{"auths":{}}');
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const bin = join(process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service'), 'bin');
    await run('/bin/busybox', ['sh', join(ROOT, 'infra/images/image-builder/ibs-build')], {
      timeout: 180_000,
      maxBuffer: 64 << 20,
      env: {
        PATH: `${bin}:/usr/sbin:/usr/bin:/bin`,
        XDG_RUNTIME_DIR: join(work, 'run'),
        TMPDIR: work,
        IBS_TERMINATION_LOG: join(work, 'termination-log'),
        IBS_CONTEXT_DIR: context,
        IBS_DOCKERFILE: 'docker/Dockerfile',
        IBS_REPOSITORY: `${REGISTRY}/ibs-test/entrypoint`,
        IBS_PLATFORMS: 'linux/amd64',
        IBS_BUILD_ARGS: `GREETING=${b64('hello world')}`,
        IBS_LABELS: `team=${b64('ml')}`,
        IBS_INSECURE_REGISTRY: 'true',
        DOCKER_CONFIG: join(work, 'docker-config'),
        // On this host the daemon runs as root beside infra/local's, with a state folder of its own.
        BUILDKITD_FLAGS: `--root ${join(work, 'buildkit')} --oci-worker-binary /usr/sbin/runc --oci-worker-net host`,
      },
    });
    const report = JSON.parse(await readFile(join(work, 'termination-log'), 'utf8')) as { digest: string };
    expect(report.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const { manifest } = await manifestOf('ibs-test/entrypoint', report.digest);
    const config = JSON.parse((await blobOf('ibs-test/entrypoint', manifest.config.digest)).toString('utf8')) as { config: { Labels: Record<string, string> } };
    expect(config.config.Labels).toMatchObject({ greeting: 'hello world', team: 'ml' });
  }, 180_000);

  it('the image-builder builds rootless as uid 1000 with only SETUID and SETGID, as in the default pod', async () => {
    // runc plays the kubelet: the image's layers as the root filesystem, the default BuildKit pod's security
    // context (uid 1000, capabilities dropped but SETUID/SETGID, privilege escalation allowed, no seccomp), the
    // pod's volumes as bind mounts, the read-only cgroup mount a container runtime gives, and the host's network
    // so that the base image comes from and the result goes to the local (plain HTTP) registry.
    await run('bash', [BUILD_SH, 'build'], { timeout: 600_000, maxBuffer: 64 << 20 });
    const work = await tempDir();
    const rootfs = join(work, 'rootfs');
    await run('mkdir', ['-p', rootfs, join(work, 'workspace/context/docker'), join(work, 'state'), join(work, 'docker')]);
    const { manifest } = await manifestOf('ibs/image-builder', '0.28.1');
    for (const layer of manifest.layers) {
      const file = join(work, 'layer.tar.gz');
      await writeFile(file, await blobOf('ibs/image-builder', layer.digest));
      await run('tar', ['--xattrs', '--xattrs-include=security.capability', '--numeric-owner', '-xpzf', file, '-C', rootfs]);
    }
    // A RUN step too: rootless BuildKit runs it with runc inside rootlesskit's user namespace.
    const base = await ensureBaseImage();
    await writeFile(join(work, 'workspace/context/docker/Dockerfile'), `FROM ${base}\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /\nRUN echo "$GREETING from $(id -u)" > /built.txt\n`);
    await writeFile(join(work, 'workspace/context/hello.txt'), 'hi\n');
    await writeFile(join(work, 'docker/config.json'), '{"auths":{}}');
    await writeFile(join(work, 'termination-log'), '');
    await run('chown', ['-R', '1000:1000', join(work, 'workspace'), join(work, 'state'), join(work, 'termination-log')]);
    const bind = (destination: string, source: string, mode = 'rw') => ({ destination, type: 'bind', source, options: ['rbind', mode] });
    const spec = {
      ociVersion: '1.0.2',
      process: {
        user: { uid: 1000, gid: 1000 },
        args: ['/usr/local/bin/ibs-build'],
        cwd: '/home/user',
        env: [
          'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/user', 'XDG_RUNTIME_DIR=/tmp/run', 'IBS_CONTEXT_DIR=/workspace/context',
          'IBS_DOCKERFILE=docker/Dockerfile', `IBS_REPOSITORY=${REGISTRY}/ibs-test/rootless`, 'IBS_PLATFORMS=linux/amd64',
          `IBS_BUILD_ARGS=GREETING=${Buffer.from('rootless').toString('base64')}`, 'IBS_INSECURE_REGISTRY=true', 'DOCKER_CONFIG=/ibs/docker',
          'BUILDKITD_FLAGS=--oci-worker-no-process-sandbox',
        ],
        capabilities: { bounding: ['CAP_SETUID', 'CAP_SETGID'], permitted: [], effective: [], inheritable: [] },
        noNewPrivileges: false,
      },
      root: { path: rootfs, readonly: false },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
        bind('/workspace', join(work, 'workspace')),
        bind('/ibs/docker', join(work, 'docker'), 'ro'),
        bind('/home/user/.local/share/buildkit', join(work, 'state')),
        bind('/dev/termination-log', join(work, 'termination-log')),
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
    };
    await writeFile(join(work, 'config.json'), JSON.stringify(spec));
    const bin = join(process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service'), 'bin');
    const runc = [join(bin, 'runc-static'), '--root', join(work, 'runc')];
    const id = `ibs-rootless-${process.pid}`;
    try {
      await run(runc[0] as string, [...runc.slice(1), 'run', '--bundle', work, id], { timeout: 180_000, maxBuffer: 64 << 20 });
    } finally {
      await run(runc[0] as string, [...runc.slice(1), 'delete', '--force', id]).catch(() => undefined);
    }
    const report = JSON.parse(await readFile(join(work, 'termination-log'), 'utf8')) as { digest: string };
    const pushed = await manifestOf('ibs-test/rootless', report.digest);
    const config = JSON.parse((await blobOf('ibs-test/rootless', pushed.manifest.config.digest)).toString('utf8')) as { config: { Labels: Record<string, string> } };
    expect(config.config.Labels).toMatchObject({ greeting: 'rootless' });
    const files = await imageFiles('ibs-test/rootless', report.digest);
    expect(files.get('built.txt')?.toString()).toBe('rootless from 0\n');
  }, 600_000);
});
