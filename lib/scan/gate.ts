/**
 * The scanner gate, one implementation for both executors: before the build, the scanner image is resolved to a
 * digest; after the executor ran the engine (image.tar) and the scanner (exit code) over the build's shared
 * folder, the gate stores the report (on failure too), records `scan` on the Build, stops the build on a non-zero
 * exit or a missing/malformed report, and otherwise pushes the archive with the service's registry client.
 */
import { join } from 'node:path';
import type { ImageScannerConfig } from '../config/scanner';
import { BuildFailedError } from '../executors/executor';
import { RegistryError, type RegistryClient } from '../registry/client';
import { ImageArchiveError, pushImageArchive, type ArchivePushResult } from '../registry/image-archive';
import type { ObjectStore } from '../storage/object-store';
import { IMAGE_ARCHIVE, SCAN_REPORT, type ScanRecord, type ScannerRun } from './contract';
import { readScanReport } from './report';
import { scanReportKey, type ReportDestination } from './report-store';
import { resolveScannerImage, scannerRunFor, type ScannerImage } from './scanner-image';

export interface ScanGateDeps {
  config: ImageScannerConfig;
  registry: RegistryClient;
  /** The service's own bucket: the copy GET /v1/builds/{id}/scan-report serves. */
  storage: ObjectStore;
  /** reportUploadPath, or the service's bucket when it is unset. */
  destination: ReportDestination;
}

export interface PreparedScanner {
  image: ScannerImage;
  run: ScannerRun;
  /** As configured, and as resolved for this build. */
  configured: string;
}

export class ScanGate {
  constructor(private readonly deps: ScanGateDeps) {}

  /** Resolves the configured scanner image (a tag to its digest) once for this build. */
  async prepare(): Promise<PreparedScanner> {
    const configured = this.deps.config.image;
    if (!configured) throw new Error('the scanner is enabled without an image; set IMAGE_BUILDER_SCANNER_IMAGE');
    let image: ScannerImage;
    try {
      image = await resolveScannerImage(this.deps.registry, configured);
    } catch (err) {
      if (err instanceof RegistryError && !err.retryable) throw new BuildFailedError('scanner_image_unavailable', err.message);
      throw err;
    }
    return { image, run: scannerRunFor(this.deps.config, image), configured };
  }

  /**
   * Judges one scan: the report is stored wherever it is readable (so a failed scan can be read too), then a
   * missing or malformed report, or a non-zero exit, fails the build. Answers the Build's `scan` either way
   * through `record` before throwing.
   */
  async judge(buildId: string, sharedDir: string, exitCode: number, scanner: PreparedScanner, record: (scan: ScanRecord) => Promise<void>): Promise<ScanRecord> {
    const scannerInfo = { image: scanner.configured, digest: scanner.image.digest };
    let report: Awaited<ReturnType<typeof readScanReport>>;
    try {
      report = await readScanReport(join(sharedDir, SCAN_REPORT));
    } catch (err) {
      await record({ passed: false, reportUrl: null, summary: null, scanner: scannerInfo, exitCode });
      throw err;
    }
    await this.deps.storage.put(scanReportKey(buildId), report.body, { contentType: 'application/json', contentLength: report.body.length });
    const reportUrl = await this.deps.destination.upload(buildId, report.body);
    const scan: ScanRecord = { passed: exitCode === 0, reportUrl, summary: report.summary, scanner: scannerInfo, exitCode };
    await record(scan);
    if (exitCode !== 0) {
      throw new BuildFailedError('scan_failed', `the image scanner stopped the build (exit code ${exitCode}); nothing was pushed. Read the report with GET /v1/builds/${buildId}/scan-report, fix what it found and build again`);
    }
    return scan;
  }

  /** Pushes the scanned archive by digest; checks that it is the image the engine reported. */
  async push(sharedDir: string, registry: string, repository: string, expectedDigest: string): Promise<ArchivePushResult> {
    let result: ArchivePushResult;
    try {
      result = await pushImageArchive(this.deps.registry, registry, repository, join(sharedDir, IMAGE_ARCHIVE));
    } catch (err) {
      if (err instanceof ImageArchiveError) throw new BuildFailedError('image_archive_invalid', `the engine's image archive could not be pushed: ${err.message}`);
      throw err;
    }
    if (result.digest !== expectedDigest) {
      throw new BuildFailedError('image_archive_invalid', `the image archive holds ${result.digest}, but the engine reported ${expectedDigest}`);
    }
    return result;
  }
}
