/**
 * The scanner image of the gate tests: FROM scratch with the static trivy binary that infra/local/install.d/trivy.sh
 * builds, pushed to the local registry once per trivy version (nothing can be pulled from the internet here).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REGISTRY } from './registry';

const run = promisify(execFile);
const bin = process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin');

export const TRIVY_PATH = join(bin, 'trivy');

export async function ensureTrivyScannerImage(): Promise<string> {
  const version = (await readFile(join(bin, '.trivy.version'), 'utf8')).trim();
  const image = `${REGISTRY}/ibs-test/trivy-scanner:${version}`;
  const probe = await fetch(`http://${REGISTRY}/v2/ibs-test/trivy-scanner/manifests/${version}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  if (probe.ok) return image;
  const dir = await mkdtemp(join(tmpdir(), 'ibs-trivy-image-'));
  try {
    await copyFile(TRIVY_PATH, join(dir, 'trivy'));
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY trivy /usr/local/bin/trivy\nENV PATH=/usr/local/bin\nENTRYPOINT ["/usr/local/bin/trivy"]\n');
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '',
      'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=${image},push=true,registry.insecure=true`,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return image;
}

/** trivy's secret scanner over the gate's archive: offline (no vulnerability database), exit 1 on any finding. */
export const TRIVY_SECRET_SCAN_ARGS = [
  'image', '--input', '/shared/image.tar', '--scanners', 'secret', '--format', 'json', '--output', '/shared/scan-report.json',
  '--exit-code', '1', '--cache-dir', '/tmp/trivy', '--skip-db-update', '--offline-scan', '--skip-version-check', '--quiet',
];
