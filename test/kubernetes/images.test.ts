/**
 * infra/images: build.sh builds every image offline (FROM scratch or a Debian root filesystem from debootstrap) and
 * pushes it to the local registry; every Dockerfile passes BuildKit's checks (which do catch a bad one). The
 * entrypoints the pods run are run for real: on this host, and inside the images themselves with runc playing the
 * kubelet (the pod's user, capabilities and volumes): rootless BuildKit, Kaniko and BuildKit in a QEMU VM each build
 * an image with a RUN step and push it to the local registry.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REGISTRY, blobOf, ensureBaseImage, imageConfig, imageFiles, manifestOf } from '../support/registry';
import { objectStore, uploadContext } from './support/cluster';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const BUILD_SH = join(ROOT, 'infra/images/build.sh');
const BIN = join(process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service'), 'bin');
const REGISTRY_AUTH = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'registry-auth');
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
    await run('bash', [BUILD_SH, 'image-builder'], { timeout: 600_000, maxBuffer: 64 << 20 });
    const { manifest } = await manifestOf('ibs/image-builder', '0.28.1');
    const config = JSON.parse((await blobOf('ibs/image-builder', manifest.config.digest)).toString('utf8')) as {
      config: { Labels: Record<string, string>; User: string; Entrypoint: string[] };
    };
    expect(config.config.Labels['io.image-build-service.buildkit.version']).toBe('v0.28.1');
    expect(config.config.Labels['io.image-build-service.runc.version']).toBe('v1.5.2');
    expect(config.config.User).toBe('1000:1000');
    expect(config.config.Entrypoint).toEqual(['/usr/local/bin/ibs-build']);
    const files = await imageFiles('ibs/image-builder', '0.28.1');
    for (const path of ['usr/local/bin/buildkitd', 'usr/local/bin/buildctl', 'usr/local/bin/runc', 'usr/local/bin/rootlesskit', 'usr/bin/newuidmap', 'usr/bin/newgidmap', 'usr/local/bin/ibs-build', 'usr/local/bin/ibs-fetch-context', 'bin/busybox', 'etc/ssl/certs/ca-certificates.crt']) {
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
    // The default BuildKit pod's security context: uid 1000, capabilities dropped but SETUID/SETGID, privilege
    // escalation allowed, no seccomp profile.
    await run('bash', [BUILD_SH, 'image-builder'], { timeout: 600_000, maxBuffer: 64 << 20 });
    const pod = await podFiles();
    await unpackImage('ibs/image-builder', '0.28.1', pod.rootfs);
    // A RUN step too: rootless BuildKit runs it with runc inside rootlesskit's user namespace.
    const base = await ensureBaseImage();
    await writeContext(pod, `FROM ${base}\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /\nRUN echo "$GREETING from $(id -u)" > /built.txt\n`);
    await run('mkdir', ['-p', join(pod.dir, 'state')]);
    await run('chown', ['-R', '1000:1000', pod.workspace, join(pod.dir, 'state'), pod.terminationLog]);
    await runContainer(pod, {
      user: { uid: 1000, gid: 1000 },
      args: ['/usr/local/bin/ibs-build'],
      cwd: '/home/user',
      env: [
        'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/user', 'XDG_RUNTIME_DIR=/tmp/run', ...buildEnv(`${REGISTRY}/ibs-test/rootless`, 'rootless'),
        'IBS_INSECURE_REGISTRY=true', 'BUILDKITD_FLAGS=--oci-worker-no-process-sandbox',
      ],
      capabilities: ['CAP_SETUID', 'CAP_SETGID'],
      noNewPrivileges: false,
      mounts: [bind('/home/user/.local/share/buildkit', join(pod.dir, 'state'))],
    });
    const report = JSON.parse(await readFile(pod.terminationLog, 'utf8')) as { digest: string };
    const config = await imageConfig('ibs-test/rootless', report.digest);
    expect(config.config.Labels).toMatchObject({ greeting: 'rootless' });
    const files = await imageFiles('ibs-test/rootless', report.digest);
    expect(files.get('built.txt')?.toString()).toBe('rootless from 0\n');
  }, 600_000);
});

describe('the image-builder and ALLOW_SELF_SIGNED_CERTS', () => {
  it.each([
    ['pushes to a registry with a self-signed certificate when it is on', 'true'],
    ['refuses the self-signed certificate when it is off', 'false'],
  ])('%s', async (_case, allow) => {
    await run('bash', [BUILD_SH, 'image-builder'], { timeout: 600_000, maxBuffer: 64 << 20 });
    const pod = await podFiles();
    await unpackImage('ibs/image-builder', '0.28.1', pod.rootfs);
    await writeContext(pod, 'FROM scratch\nCOPY hello.txt /\n');
    const password = (await readFile(join(REGISTRY_AUTH, 'ibs-push.password'), 'utf8')).trim();
    await writeFile(join(pod.dir, 'docker/config.json'), JSON.stringify({ auths: { '127.0.0.1:5443': { auth: Buffer.from(`ibs-push:${password}`).toString('base64') } } }));
    await run('mkdir', ['-p', join(pod.dir, 'state')]);
    await run('chown', ['-R', '1000:1000', pod.workspace, join(pod.dir, 'state'), pod.terminationLog]);
    const outcome = await runContainer(pod, {
      user: { uid: 1000, gid: 1000 },
      args: ['/usr/local/bin/ibs-build'],
      cwd: '/home/user',
      env: [
        'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/user', 'XDG_RUNTIME_DIR=/tmp/run', ...buildEnv('127.0.0.1:5443/ibs-test/self-signed', 'tls'),
        `IBS_ALLOW_SELF_SIGNED_CERTS=${allow}`, 'BUILDKITD_FLAGS=--oci-worker-no-process-sandbox',
      ],
      capabilities: ['CAP_SETUID', 'CAP_SETGID'],
      noNewPrivileges: false,
      mounts: [bind('/home/user/.local/share/buildkit', join(pod.dir, 'state'))],
    }).then(() => 'pushed', (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`);
    if (allow === 'true') {
      expect(outcome).toBe('pushed');
      expect(JSON.parse(await readFile(pod.terminationLog, 'utf8'))).toMatchObject({ digest: expect.stringMatching(/^sha256:/) });
    } else {
      expect(outcome).toMatch(/x509|certificate/);
      expect(await readFile(pod.terminationLog, 'utf8')).toBe('');
    }
  }, 600_000);
});

describe('the Kaniko image', () => {
  it('is a static Kaniko executor FROM scratch, with its tools under /kaniko', async () => {
    await run('bash', [BUILD_SH, 'kaniko'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
    const config = await imageConfig('ibs/image-builder', '0.28.1-kaniko-image');
    expect(config.config.Labels).toMatchObject({ 'io.image-build-service.kaniko.version': 'v1.24.0' });
    expect(config.config.Entrypoint).toEqual(['/usr/local/bin/ibs-build']);
    const files = await imageFiles('ibs/image-builder', '0.28.1-kaniko-image');
    for (const path of ['kaniko/executor', 'kaniko/bin/busybox', 'kaniko/ssl/certs/ca-certificates.crt', 'usr/local/bin/ibs-build', 'usr/local/bin/ibs-fetch-context']) {
      expect(files.has(path), path).toBe(true);
    }
  }, 1_500_000);

  it('fetches the context and builds and pushes with Kaniko as root with the default pod\'s capabilities, leaving its own files out of the image', async () => {
    const pod = await kanikoPod(`FROM ${await ensureBaseImage()}\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /\nRUN echo "$GREETING from $(id -u)" > /built.txt\n`);
    await runContainer(pod, kanikoProcess(['/usr/local/bin/ibs-build'], [...buildEnv(`${REGISTRY}/ibs-test/kaniko`, 'kaniko'), 'IBS_INSECURE_REGISTRY=true']));
    const report = JSON.parse(await readFile(pod.terminationLog, 'utf8')) as { digest: string };
    expect(report.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const config = await imageConfig('ibs-test/kaniko', report.digest);
    expect(config.config.Labels).toMatchObject({ greeting: 'kaniko' });
    const files = await imageFiles('ibs-test/kaniko', report.digest);
    expect(files.get('built.txt')?.toString()).toBe('kaniko from 0\n');
    expect(files.get('hello.txt')?.toString()).toBe('hi\n');
    expect([...files.keys()].filter((path) => /^(kaniko|usr\/local\/bin\/ibs-|workspace|ibs)\b/.test(path))).toEqual([]);
  }, 600_000);

  it.each([
    ['pushes to a registry with a self-signed certificate when ALLOW_SELF_SIGNED_CERTS is on', 'true'],
    ['refuses the self-signed certificate when ALLOW_SELF_SIGNED_CERTS is off', 'false'],
  ])('%s', async (_case, allow) => {
    const pod = await kanikoPod('FROM scratch\nCOPY hello.txt /\n');
    const password = (await readFile(join(REGISTRY_AUTH, 'ibs-push.password'), 'utf8')).trim();
    await writeFile(join(pod.dir, 'docker/config.json'), JSON.stringify({ auths: { '127.0.0.1:5443': { auth: Buffer.from(`ibs-push:${password}`).toString('base64') } } }));
    const outcome = await runContainer(pod, kanikoProcess(['/usr/local/bin/ibs-build'], [...buildEnv('127.0.0.1:5443/ibs-test/self-signed', 'tls'), `IBS_ALLOW_SELF_SIGNED_CERTS=${allow}`]))
      .then(() => 'pushed', (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`);
    if (allow === 'true') {
      expect(outcome).toBe('pushed');
      expect(JSON.parse(await readFile(pod.terminationLog, 'utf8'))).toMatchObject({ digest: expect.stringMatching(/^sha256:/) });
    } else {
      expect(outcome).toMatch(/x509|certificate/);
      expect(await readFile(pod.terminationLog, 'utf8')).toBe('');
    }
  }, 600_000);
});

describe('the QEMU image', () => {
  // QEMU_VM_CPUS sets the VM's CPUs (IBS_VM_CPUS) for a measurement; by default the entrypoint chooses.
  const VM_CPUS = process.env.QEMU_VM_CPUS ? [`IBS_VM_CPUS=${process.env.QEMU_VM_CPUS}`] : [];

  it('is Debian with QEMU and Debian\'s kernel, and the image-builder as the VM\'s root', async () => {
    await run('bash', [BUILD_SH, 'qemu'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
    const config = await imageConfig('ibs/image-builder', '0.28.1-qemu-image');
    expect(config.config.User).toBe('1000:1000');
    expect(config.config.Entrypoint).toEqual(['/usr/local/bin/ibs-build']);
  }, 1_500_000);

  it('boots the VM and builds and pushes from inside it, as uid 1000 with no capability', async () => {
    const pod = await podFiles();
    await unpackImage('ibs/image-builder', '0.28.1-qemu-image', pod.rootfs);
    await ensureBaseImage();
    // QEMU's user-mode network puts the pod's own loopback at 10.0.2.2, so the VM reaches the local registry there.
    const registry = REGISTRY.replace('127.0.0.1', '10.0.2.2');
    await writeContext(pod, `FROM ${registry}/ibs-test/busybox:1\nARG GREETING\nCOPY hello.txt /\nRUN echo "$GREETING from $(id -u) in $(uname -r)" > /built.txt\n`);
    await run('chown', ['-R', '1000:1000', pod.workspace, pod.terminationLog]);
    const started = Date.now();
    const { stdout } = await runContainer(pod, {
      user: { uid: 1000, gid: 1000 },
      args: ['/usr/local/bin/ibs-build'],
      cwd: '/home/user',
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/user', 'IBS_VM_MEMORY=1G', ...VM_CPUS, ...buildEnv(`${registry}/ibs-test/qemu`, 'qemu'), 'IBS_INSECURE_REGISTRY=true'],
      capabilities: [],
      noNewPrivileges: true,
      // /dev/kvm as a device plugin hands it to a pod. This machine's KVM is PVM (kvm_pvm), which boots only guest
      // kernels built for it, so the entrypoint must see that and emulate instead.
      devices: existsSync('/dev/kvm') ? [{ path: '/dev/kvm', type: 'c', major: 10, minor: 232, fileMode: 0o666, uid: 0, gid: 0 }] : [],
    }, 1_200_000);
    const accel = !existsSync('/dev/kvm') ? '/dev/kvm is not available' : existsSync('/sys/module/kvm_pvm') ? "the node's KVM is PVM" : 'with KVM';
    expect(stdout).toContain(accel);
    console.log(`QEMU image build (${accel}): ${Math.round((Date.now() - started) / 1000)} s`);
    const report = JSON.parse(await readFile(pod.terminationLog, 'utf8')) as { digest: string };
    const files = await imageFiles('ibs-test/qemu', report.digest);
    expect(files.get('built.txt')?.toString()).toMatch(/^qemu from 0 in \d+\.\d+\.\d+-\d+-cloud-amd64\n$/);
  }, 1_500_000);

  /**
   * The QEMU image's entrypoint with the scanner gate's IBS_ARCHIVE (the archive at /workspace/image.tar), as uid 1000
   * with no capability and 1G for the VM (or vmMemory); resolves with the console, or with the failure's exit code
   * as well.
   */
  async function gatedQemuBuild(dockerfile: string, timeout: number, { vmInit, vmMemory = '1G', env = [] }: { vmInit?: string; vmMemory?: string; env?: string[] } = {}) {
    const pod = await podFiles();
    await unpackImage('ibs/image-builder', '0.28.1-qemu-image', pod.rootfs);
    if (vmInit) await writeFile(join(pod.rootfs, 'vm/rootfs/init'), vmInit, { mode: 0o755 });
    await ensureBaseImage();
    const registry = REGISTRY.replace('127.0.0.1', '10.0.2.2');
    await writeContext(pod, `FROM ${registry}/ibs-test/busybox:1\n${dockerfile}`);
    await run('chown', ['-R', '1000:1000', pod.workspace, pod.terminationLog]);
    const outcome = await runContainer(pod, {
      user: { uid: 1000, gid: 1000 },
      args: ['/usr/local/bin/ibs-build'],
      cwd: '/home/user',
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/user', `IBS_VM_MEMORY=${vmMemory}`, 'IBS_ARCHIVE=/workspace/image.tar',
        ...VM_CPUS, ...env,
        ...buildEnv(`${registry}/ibs-test/qemu-archive`, 'qemu'), 'IBS_INSECURE_REGISTRY=true'],
      capabilities: [],
      noNewPrivileges: true,
    }, timeout).then(
      ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code ?? -1 }),
    );
    return { pod, ...outcome };
  }

  // The VM's root is a tmpfs in its memory, which holds the build's layer twice (unpacked, and packed in BuildKit's
  // content store). With IBS_VM_MEMORY=1G, a layer of QEMU_ARCHIVE_LAYER_MIB (300) MiB of random bytes, which gzip
  // cannot shrink, fits that way but not with the gate archive as a third copy: written into the VM's tmpfs before it
  // was sent, the archive of a 260 MiB layer ran the VM out of memory (240 MiB still passed).
  it('hands the scanner gate an archive the VM could not hold beside its build: written through the port as it is made', async () => {
    const layerMiB = Number(process.env.QEMU_ARCHIVE_LAYER_MIB ?? 300);
    const started = Date.now();
    const { pod, stdout, stderr, code } = await gatedQemuBuild(`RUN dd if=/dev/urandom of=/big bs=1M count=${layerMiB} 2>/dev/null\n`, 900_000);
    console.log(`QEMU gate archive of a ${layerMiB} MiB layer: ${Math.round((Date.now() - started) / 1000)} s`);
    expect(code, `${stdout}${stderr}`.slice(-3000)).toBe(0);
    const report = JSON.parse(await readFile(pod.terminationLog, 'utf8')) as { digest: string };
    expect(report.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    // Whole: a docker archive that holds the big layer.
    expect((await stat(join(pod.workspace, 'image.tar'))).size).toBeGreaterThan(layerMiB << 20);
    const { stdout: listing } = await run('tar', ['-tvf', join(pod.workspace, 'image.tar')], { maxBuffer: 16 << 20 });
    expect(listing).toMatch(/manifest\.json/);
    expect(Math.max(...listing.split('\n').map((line) => Number(line.split(/\s+/)[2] ?? 0)))).toBeGreaterThan(layerMiB << 20);
    // The gate pushes: nothing reached the registry from inside the VM.
    expect((await fetch(`http://${REGISTRY}/v2/ibs-test/qemu-archive/manifests/${report.digest}`)).status).toBe(404);
  }, 1_500_000);

  it('ends a gated build that fails before it writes its archive: the relay still waiting on the FIFO holds nothing up', async () => {
    const { pod, stderr, code } = await gatedQemuBuild('RUN exit 3\n', 600_000);
    expect(stderr).toContain('[ibs] the build in the VM failed (exit status 1)');
    expect(code).toBe(1);
    expect(await readFile(pod.terminationLog, 'utf8')).toBe('');
  }, 900_000);

  // A VM whose kernel stops (here its init exits, which panics the kernel; a soft lockup panics it too, through
  // softlockup_panic) ends the build at once and says so, instead of running on to the pod's deadline.
  it('ends the build when the VM\'s kernel panics, names the panic, and boots the kernel to panic on a soft lockup', async () => {
    const init = '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc && /bin/busybox mount -t proc proc /proc\n' +
      'echo "guest: softlockup_panic=$(/bin/busybox cat /proc/sys/kernel/softlockup_panic) watchdog_thresh=$(/bin/busybox cat /proc/sys/kernel/watchdog_thresh)"\nexit 3\n';
    const { pod, stdout, stderr, code } = await gatedQemuBuild('RUN true\n', 600_000, { vmInit: init });
    expect(stdout).toContain('guest: softlockup_panic=1 watchdog_thresh=60');
    expect(stderr).toMatch(/\[ibs\] the build in the VM failed: the VM's kernel stopped \(Kernel panic - not syncing: Attempted to kill init!/);
    expect(code).toBe(1);
    expect(await readFile(pod.terminationLog, 'utf8')).toBe('');
  }, 900_000);

  // The builder pod sizes the VM from the build container's limits (lib/config/qemu-vm.ts): IBS_VM_MEMORY, and
  // IBS_VM_KVM_CPUS, which only KVM uses. The guest's init here reports what the guest's kernel was given.
  it('gives the VM the memory the pod sets, and under emulation one CPU whatever the CPU limit', async () => {
    const init = '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc && /bin/busybox mount -t proc proc /proc\n' +
      'echo "guest: cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo) $(/bin/busybox grep MemTotal /proc/meminfo)"\nexit 3\n';
    const { stdout } = await gatedQemuBuild('RUN true\n', 600_000, { vmInit: init, vmMemory: '700M', env: ['IBS_VM_KVM_CPUS=3'] });
    const kvm = existsSync('/dev/kvm') && !existsSync('/sys/module/kvm_pvm');
    const cpus = VM_CPUS.length ? Number(process.env.QEMU_VM_CPUS) : kvm ? 3 : 1;
    expect(stdout).toContain(`[ibs] booting the build VM ${kvm ? 'with KVM' : 'without KVM'}`);
    expect(stdout).toContain(`: ${cpus} CPU(s), memory 700M`);
    const guest = /guest: cpus=(\d+) MemTotal:\s+(\d+) kB/.exec(stdout);
    expect(Number(guest?.[1])).toBe(cpus);
    // The guest's kernel keeps some of the 700 MiB for itself before it counts MemTotal.
    expect(Number(guest?.[2]) / 1024).toBeGreaterThan(600);
    expect(Number(guest?.[2]) / 1024).toBeLessThanOrEqual(700);
  }, 900_000);
});

describe('the service image', () => {
  it('is the repository\'s Dockerfile on Debian with the pinned Node.js, and its API starts and reaches Temporal, PostgreSQL and storage', async () => {
    const version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    await run('bash', [BUILD_SH, 'service'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
    const config = await imageConfig('ibs/image-build-service', version);
    expect(config.config.User).toBe('node');
    const pod = await podFiles();
    await unpackImage('ibs/image-build-service', version, pod.rootfs);
    expect(await readFile(join(pod.rootfs, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
    // As the chart runs it: uid 1000, no capability, the stack's settings; the host's network reaches the stack.
    const port = 18_000 + (process.pid % 1000);
    const stack = Object.entries(process.env).filter(([k]) => /^(TEMPORAL|POSTGRES|MINIO|LOGS_BUCKET|DISABLE_HTTPS|AWS_SDK)/.test(k)).map(([k, v]) => `${k}=${v}`);
    const api = runContainer(pod, {
      user: { uid: 1000, gid: 1000 },
      args: ['node', '--max-semi-space-size=4', 'dist/api/main.js'],
      cwd: '/app',
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production', 'API_HOST=127.0.0.1', `API_PORT=${port}`, ...stack],
      capabilities: [],
      noNewPrivileges: true,
    }, 120_000).catch((e: Error) => e);
    const ready = await eventuallyOk(`http://127.0.0.1:${port}/readyz`, 90_000);
    await run(join(BIN, 'runc-static'), ['--root', join(pod.dir, 'runc'), 'kill', '--all', containerIds.get(pod) ?? '', 'KILL']).catch(() => undefined);
    await api;
    expect(ready).toBe(200);
  }, 1_800_000);
});

/** Polls a URL until it answers 200 (or the time is up); returns the last status. */
async function eventuallyOk(url: string, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  let status = 0;
  while (Date.now() < end) {
    status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return status;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return status;
}

interface PodFiles {
  dir: string;
  rootfs: string;
  workspace: string;
  terminationLog: string;
}

/** The pod's volumes as folders: the workspace (the context), the registry secret, the termination log. */
async function podFiles(): Promise<PodFiles> {
  const dir = await tempDir();
  const pod = { dir, rootfs: join(dir, 'rootfs'), workspace: join(dir, 'workspace'), terminationLog: join(dir, 'termination-log') };
  await run('mkdir', ['-p', pod.rootfs, join(pod.workspace, 'context/docker'), join(dir, 'docker')]);
  await writeFile(join(dir, 'docker/config.json'), '{"auths":{}}');
  await writeFile(pod.terminationLog, '');
  return pod;
}

async function writeContext(pod: PodFiles, dockerfile: string): Promise<void> {
  await writeFile(join(pod.workspace, 'context/docker/Dockerfile'), dockerfile);
  await writeFile(join(pod.workspace, 'context/hello.txt'), 'hi\n');
}

/** The image's layers unpacked as a container runtime would, file capabilities included. */
async function unpackImage(repository: string, tag: string, rootfs: string): Promise<void> {
  const { manifest } = await manifestOf(repository, tag);
  for (const layer of manifest.layers) {
    const file = join(rootfs, '..', 'layer.tar.gz');
    await writeFile(file, await blobOf(repository, layer.digest));
    await run('tar', ['--xattrs', '--xattrs-include=security.capability', '--numeric-owner', '-xpzf', file, '-C', rootfs]);
    await rm(file);
  }
}

function buildEnv(repository: string, greeting: string): string[] {
  return [
    'IBS_BUILD_ID=images-test', 'IBS_CONTEXT_DIR=/workspace/context', 'IBS_DOCKERFILE=docker/Dockerfile', `IBS_REPOSITORY=${repository}`,
    'IBS_PLATFORMS=linux/amd64', `IBS_BUILD_ARGS=GREETING=${Buffer.from(greeting).toString('base64')}`, 'DOCKER_CONFIG=/ibs/docker',
  ];
}

/** The container last started for a pod, for `runc kill`. */
const containerIds = new Map<PodFiles, string>();

const bind = (destination: string, source: string, mode = 'rw') => ({ destination, type: 'bind', source, options: ['rbind', mode] });

interface ContainerProcess {
  user: { uid: number; gid: number };
  args: string[];
  cwd: string;
  env: string[];
  capabilities: string[];
  noNewPrivileges: boolean;
  mounts?: ReturnType<typeof bind>[];
  devices?: Array<{ path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }>;
}

/**
 * runc plays the kubelet: the image's layers under an overlay of the container's own (as containerd mounts a
 * container's root, which Kaniko also takes as its sign that it runs in a container), the pod's volumes as bind
 * mounts, the read-only cgroup mount a container runtime gives, and the host's network so that the local registry and
 * MinIO are reachable.
 */
async function runContainer(pod: PodFiles, p: ContainerProcess, timeout = 300_000): Promise<{ stdout: string; stderr: string }> {
  const id = `ibs-images-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  containerIds.set(pod, id);
  const layer = join(pod.dir, id);
  await run('mkdir', ['-p', join(layer, 'upper'), join(layer, 'work'), join(layer, 'root')]);
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${pod.rootfs},upperdir=${join(layer, 'upper')},workdir=${join(layer, 'work')}`, join(layer, 'root')]);
  const spec = {
    ociVersion: '1.0.2',
    process: {
      user: p.user,
      args: p.args,
      cwd: p.cwd,
      env: p.env,
      // A non-root process keeps only the bounding set (what its set-id and file-capability helpers may gain).
      capabilities: { bounding: p.capabilities, ...(p.user.uid === 0 ? { permitted: p.capabilities, effective: p.capabilities } : { permitted: [], effective: [] }), inheritable: [] },
      noNewPrivileges: p.noNewPrivileges,
    },
    root: { path: join(layer, 'root'), readonly: false },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      bind('/workspace', pod.workspace),
      bind('/ibs/docker', join(pod.dir, 'docker'), 'ro'),
      bind('/dev/termination-log', pod.terminationLog),
      ...(p.mounts ?? []),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      devices: p.devices ?? [],
      resources: { devices: [{ allow: false, access: 'rwm' }, ...(p.devices ?? []).map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: 'rwm' }))] },
    },
  };
  await writeFile(join(pod.dir, 'config.json'), JSON.stringify(spec));
  const runc = [join(BIN, 'runc-static'), '--root', join(pod.dir, 'runc')];
  try {
    // SIGKILL at the timeout: runc passes a SIGTERM on to the container's first process, which, as PID 1, ignores it.
    return await run(runc[0] as string, [...runc.slice(1), 'run', '--bundle', pod.dir, id], { timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
  } finally {
    await run(runc[0] as string, [...runc.slice(1), 'delete', '--force', id]).catch(() => undefined);
    await run('umount', [join(layer, 'root')]);
  }
}

/** A Kaniko pod whose init container (ibs-fetch-context, same image) has fetched the context from MinIO. */
async function kanikoPod(dockerfile: string): Promise<PodFiles> {
  await run('bash', [BUILD_SH, 'kaniko'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
  const pod = await podFiles();
  await unpackImage('ibs/image-builder', '0.28.1-kaniko-image', pod.rootfs);
  const key = await uploadContext({ 'docker/Dockerfile': dockerfile, 'hello.txt': 'hi\n' });
  await run('rm', ['-rf', join(pod.workspace, 'context')]);
  await runContainer(pod, kanikoProcess(['/usr/local/bin/ibs-fetch-context'], [
    `IBS_CONTEXT_URL=${await objectStore().presignGet(key, 300)}`, 'IBS_CONTEXT_DIR=/workspace/context',
  ]));
  expect(await readFile(join(pod.workspace, 'context/hello.txt'), 'utf8')).toBe('hi\n');
  return pod;
}

/** The Kaniko pod's default security context: root, all capabilities dropped but SETUID, SETGID, CHOWN, FOWNER. */
function kanikoProcess(args: string[], env: string[]): ContainerProcess {
  return {
    user: { uid: 0, gid: 0 },
    args,
    cwd: '/workspace',
    env: ['PATH=/usr/local/bin:/kaniko:/kaniko/bin', 'HOME=/root', 'SSL_CERT_DIR=/kaniko/ssl/certs', 'IBS_ENGINE=kaniko', ...env],
    capabilities: ['CAP_SETUID', 'CAP_SETGID', 'CAP_CHOWN', 'CAP_FOWNER'],
    noNewPrivileges: true,
  };
}
