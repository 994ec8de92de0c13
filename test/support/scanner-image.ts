/**
 * The scanner image of the gate tests and benchmarks: `bash infra/images/build.sh scanner` (FROM scratch with the
 * static trivy that infra/local/install.d/trivy.sh builds, and curl, which the builder pod's scanner container
 * uploads with), pushed to the local registry once per trivy version (nothing can be pulled from the internet here).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REGISTRY } from './registry';

const run = promisify(execFile);
const bin = process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin');

export async function ensureTrivyScannerImage(): Promise<string> {
  const version = (await readFile(join(bin, '.trivy.version'), 'utf8')).trim();
  const image = `${REGISTRY}/ibs/trivy-scanner:${version}`;
  const probe = await fetch(`http://${REGISTRY}/v2/ibs/trivy-scanner/manifests/${version}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  if (probe.ok) return image;
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'scanner'], {
    timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, SCANNER_IMAGE: image },
  });
  return image;
}

/** trivy's secret scanner over the gate's archive: offline (no vulnerability database), exit 1 on any finding. */
export const TRIVY_SECRET_SCAN_ARGS = [
  'image', '--input', '/shared/image.tar', '--scanners', 'secret', '--format', 'json', '--output', '/shared/scan-report.json',
  '--exit-code', '1', '--cache-dir', '/tmp/trivy', '--skip-db-update', '--offline-scan', '--skip-version-check', '--quiet',
];

/**
 * The service's scanner settings for trivy's secret scan: its env (TRIVY_NO_PROGRESS and a canary that must never
 * show in a log), the report's upload path and a memory and CPU limit that trivy fits in.
 */
export function trivyGateSettings(image: string, reportUploadPath: string, canary: string): Record<string, string> {
  return {
    IMAGE_BUILDER_SCANNER_ENABLED: 'true',
    IMAGE_BUILDER_SCANNER_IMAGE: image,
    IMAGE_BUILDER_SCANNER_ARGS: JSON.stringify(TRIVY_SECRET_SCAN_ARGS),
    IMAGE_BUILDER_SCANNER_ENV: JSON.stringify({ TRIVY_NO_PROGRESS: 'true', SCANNER_API_TOKEN: canary }),
    IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH: reportUploadPath,
    IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_MEMORY: '1Gi',
    IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU: '1',
  };
}
