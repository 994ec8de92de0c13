/** Reading the scanner's report: present, JSON, and what it found (for the formats the service recognises). */
import { readFile, stat } from 'node:fs/promises';
import { BuildFailedError } from '../executors/executor';
import type { ScanSummary } from './contract';

/** Reports beyond this are refused rather than read into memory; a real report is kilobytes to a few megabytes. */
export const MAX_REPORT_BYTES = 64 * 1024 * 1024;

/** The report's bytes and summary; a missing or malformed report fails the build with its own code. */
export async function readScanReport(path: string): Promise<{ body: Buffer; summary: ScanSummary }> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) {
    throw new BuildFailedError('scan_report_missing', 'the scanner wrote no /shared/scan-report.json; make the scanner command write its JSON report there (e.g. trivy --format json --output /shared/scan-report.json)');
  }
  if (info.size > MAX_REPORT_BYTES) {
    throw new BuildFailedError('scan_report_invalid', `the scanner's report is ${info.size} bytes, over the ${MAX_REPORT_BYTES}-byte limit`);
  }
  const body = await readFile(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BuildFailedError('scan_report_invalid', 'the scanner wrote /shared/scan-report.json, but it is not JSON; configure the scanner to write a JSON report');
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new BuildFailedError('scan_report_invalid', 'the scanner report is JSON but not an object or array; configure the scanner to write its JSON report');
  }
  return { body, summary: summarize(parsed) };
}

interface TrivyReport {
  Results?: { Vulnerabilities?: { Severity?: string }[]; Secrets?: { Severity?: string }[]; Misconfigurations?: { Severity?: string }[] }[];
}

/** Counts findings of a Trivy (`--format json`) or Snyk (`--json-file-output`) report; other formats stay opaque. */
export function summarize(report: unknown): ScanSummary {
  if (isObject(report) && 'SchemaVersion' in report && 'ArtifactName' in report) {
    const findings: Record<string, number> = { vulnerabilities: 0, secrets: 0, misconfigurations: 0 };
    const bySeverity: Record<string, number> = {};
    for (const result of (report as TrivyReport).Results ?? []) {
      const kinds = { vulnerabilities: result.Vulnerabilities, secrets: result.Secrets, misconfigurations: result.Misconfigurations };
      for (const [kind, items] of Object.entries(kinds)) {
        for (const item of items ?? []) {
          findings[kind] = (findings[kind] ?? 0) + 1;
          const severity = String(item.Severity ?? 'UNKNOWN').toLowerCase();
          bySeverity[severity] = (bySeverity[severity] ?? 0) + 1;
        }
      }
    }
    return { format: 'trivy', findings, bySeverity };
  }
  const snyk = Array.isArray(report) ? report : [report];
  if (snyk.length > 0 && snyk.every((r) => isObject(r) && Array.isArray(r.vulnerabilities))) {
    const bySeverity: Record<string, number> = {};
    let count = 0;
    for (const r of snyk as { vulnerabilities: { severity?: string }[] }[]) {
      for (const v of r.vulnerabilities) {
        count += 1;
        const severity = String(v.severity ?? 'unknown').toLowerCase();
        bySeverity[severity] = (bySeverity[severity] ?? 0) + 1;
      }
    }
    return { format: 'snyk', findings: { vulnerabilities: count }, bySeverity };
  }
  return { format: 'unknown' };
}

/** One summary of several scans (the platforms of an index): counts added up when every report has the same known format. */
export function mergeSummaries(summaries: ScanSummary[]): ScanSummary {
  const [first] = summaries;
  if (!first || summaries.length === 1) return first ?? { format: 'unknown' };
  if (first.format === 'unknown' || summaries.some((s) => s.format !== first.format)) return { format: 'unknown' };
  const add = (into: Record<string, number>, from: Record<string, number> | undefined) => {
    for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v;
    return into;
  };
  return {
    format: first.format,
    findings: summaries.reduce((acc, s) => add(acc, s.findings), {} as Record<string, number>),
    bySeverity: summaries.reduce((acc, s) => add(acc, s.bySeverity), {} as Record<string, number>),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
