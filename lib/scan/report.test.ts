import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { indexTar } from '../registry/image-archive';
import { tarOf } from '../../test/support/archives';
import { readScanReport, summarize } from './report';
import { scratchDir } from '../../test/support/scratch';

describe('scan report', () => {
  it('counts trivy findings by kind and severity', () => {
    const report = { SchemaVersion: 2, ArtifactName: '/shared/image.tar', Results: [{ Secrets: [{ Severity: 'HIGH' }] }, { Vulnerabilities: [{ Severity: 'CRITICAL' }, { Severity: 'HIGH' }] }] };
    expect(summarize(report)).toEqual({ format: 'trivy', findings: { vulnerabilities: 2, secrets: 1, misconfigurations: 0 }, bySeverity: { high: 2, critical: 1 } });
  });

  it('counts snyk vulnerabilities and leaves other formats opaque', () => {
    expect(summarize({ vulnerabilities: [{ severity: 'medium' }] })).toEqual({ format: 'snyk', findings: { vulnerabilities: 1 }, bySeverity: { medium: 1 } });
    expect(summarize({ anything: true })).toEqual({ format: 'unknown' });
  });

  it('tells a missing report from a malformed one', async () => {
    const dir = scratchDir('ibs-report-');
    await expect(readScanReport(join(dir, 'scan-report.json'))).rejects.toMatchObject({ code: 'scan_report_missing' });
    await writeFile(join(dir, 'scan-report.json'), 'Total: 0 (table output)');
    await expect(readScanReport(join(dir, 'scan-report.json'))).rejects.toMatchObject({ code: 'scan_report_invalid' });
    await writeFile(join(dir, 'scan-report.json'), '42');
    await expect(readScanReport(join(dir, 'scan-report.json'))).rejects.toMatchObject({ code: 'scan_report_invalid' });
  });
});

describe('image archive index', () => {
  it('finds each file with its byte range, long names and ./ prefixes included', async () => {
    const long = `blobs/sha256/${'a'.repeat(64)}/${'b'.repeat(80)}`;
    const dir = scratchDir('ibs-tar-');
    const path = join(dir, 'x.tar');
    await writeFile(path, await tarOf([{ name: './index.json', body: '{"manifests":[]}' }, { name: long, body: 'x'.repeat(1000) }, { name: 'dir/', type: 'directory' }]));
    const index = await indexTar(path);
    expect(index.get('index.json')).toEqual({ offset: 512, size: 16 });
    expect(index.get(long)?.size).toBe(1000);
    expect(index.has('dir/')).toBe(false);
  });
});
