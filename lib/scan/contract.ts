/**
 * The scanner gate's contract, the same on every executor (spec "Image scanning"): the engine writes the image to
 * /shared/image.tar instead of pushing; the scanner runs with /shared mounted and must write
 * /shared/scan-report.json; exit code 0 lets the build go on to the push, anything else stops it. The executors
 * only run the two steps; lib/scan/gate.ts judges the result and pushes, once for both.
 */
import type { ImageScannerConfig } from '../config/scanner';
import type { ScannerImage } from './scanner-image';

export const SHARED_DIR = '/shared';
export const IMAGE_ARCHIVE = 'image.tar';
export const SCAN_REPORT = 'scan-report.json';

/** What an executor runs as the scanner: the configured scanner, pinned to the digest resolved for this build. */
export interface ScannerRun {
  /** registry/repository@sha256:… — never a tag, so a re-pointed tag cannot change what scans this build. */
  image: string;
  /** The command the container runs: the configured command, or the image's entrypoint. */
  command: string[];
  /** Its arguments: the configured args, or the image's CMD when neither command nor args are configured. */
  args: string[];
  /** The scanner's environment (its values are secrets: never logged). */
  env: Record<string, string>;
  resources: ImageScannerConfig['resources'];
}

/** The scanner gate's part of a build job: where the shared folder is on the worker, and what scans. */
export interface GateJob {
  /** A folder on the worker, private to this build attempt, that ends up holding image.tar and scan-report.json. */
  sharedDir: string;
  scanner: ScannerRun;
  /** The resolved scanner image (layers, config), for an executor that unpacks it itself. */
  scannerImage: ScannerImage;
}

export interface ScanSummary {
  /** The report's format as recognised (trivy, snyk, or unknown: then only `passed` speaks). */
  format: 'trivy' | 'snyk' | 'unknown';
  /** Findings by kind (vulnerabilities, secrets, misconfigurations) and by severity, when the format is known. */
  findings?: Record<string, number>;
  bySeverity?: Record<string, number>;
}

/** What the Build shows as `scan`. */
export interface ScanRecord {
  passed: boolean;
  /** Where the report was uploaded (reportUploadPath/<build id>/scan-report.json), or null without a report. */
  reportUrl: string | null;
  summary: ScanSummary | null;
  /** The scanner image as configured and the digest it was resolved to for this build. */
  scanner: { image: string; digest: string };
  exitCode: number;
}
