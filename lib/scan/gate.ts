/**
 * The scanner gate, one implementation for both executors: before the build, the scanner image is resolved to a
 * digest; after the executor ran the engine (image.tar) and the scanner (exit code) over the build's shared
 * folder, the gate stores the report (on failure too), records `scan` on the Build, stops the build on a non-zero
 * exit or a missing/malformed report, and otherwise pushes the archive with the service's registry client. Images
 * that need no build go through the same judgement (scanImages), scanned by the runner the worker gives it.
 */
import { join } from 'node:path';
import type { ImageScannerConfig } from '../config/scanner';
import { BuildFailedError } from '../executors/executor';
import { RegistryError, type RegistryClient } from '../registry/client';
import { ImageArchiveError, pushImageArchive, type ArchivePushResult } from '../registry/image-archive';
import { removeTree } from '../scratch/remove-tree';
import type { ObjectStore } from '../storage/object-store';
import { IMAGE_ARCHIVE, SCAN_REPORT, type ScanRecord, type ScannerRun } from './contract';
import { mergeSummaries, readScanReport } from './report';
import type { ScannerObserver } from './runc-scanner';
import { scanReportKey, type ReportDestination } from './report-store';
import { resolveScannerImage, scannerRunFor, type ScannerImage } from './scanner-image';
import { makeSharedDir, removeEarlierSharedDirs } from './shared-dir';

/** Runs the scanner over a shared folder and answers its exit code (the local executor's RuncScanner). */
export interface ScanRunner {
  run(image: ScannerImage, run: ScannerRun, sharedDir: string, observer: ScannerObserver, timeoutSeconds: number): Promise<number>;
}

/** An image that needs no build, to be scanned: `write` puts it at the path as the contract's image.tar. */
export interface ImageToScan {
  platform: string;
  digest: string;
  write(archivePath: string): Promise<void>;
}

type ScanReport = Awaited<ReturnType<typeof readScanReport>>;

interface Scan {
  platform: string;
  digest?: string;
  exitCode: number;
  report: ScanReport;
}

export interface ScanGateDeps {
  config: ImageScannerConfig;
  registry: RegistryClient;
  /** The service's own bucket: the copy GET /v1/builds/{id}/scan-report serves. */
  storage: ObjectStore;
  /** reportUploadPath, or the service's bucket when it is unset. */
  destination: ReportDestination;
  /** Runs the scanner for images that need no build; without it (the kubernetes executor) they are refused, never pushed unscanned. */
  runner?: ScanRunner;
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
    const report = await this.readReport(sharedDir, exitCode, scanner, record);
    return this.verdict(buildId, [{ platform: 'image', exitCode, report }], scanner, record);
  }

  /**
   * The gate for an image that needs no build (an uploaded archive, an image URI), on the same contract: each image
   * (one, or each platform of an index) is written as image.tar into a shared folder of its own, the scanner runs
   * over it, and the scans are judged together: one report (the scanner's own, or for several platforms
   * `{platforms: [{platform, digest, exitCode, report}]}`), stored on failure too, and the build goes on only when
   * every platform passed.
   */
  async scanImages(buildId: string, images: ImageToScan[], observer: ScannerObserver, timeoutSeconds: number, record: (scan: ScanRecord) => Promise<void>): Promise<ScanRecord> {
    const runner = this.deps.runner;
    if (!runner) {
      throw new BuildFailedError('scanner_not_available', 'the scanner gate is on, and this worker has no scanner runner for an image that needs no build; nothing was pushed. Ask the operator');
    }
    const scanner = await this.prepare();
    observer.log(`[ibs] scanner ${scanner.configured} resolved to ${scanner.image.digest} for this build\n`);
    const scans: Scan[] = [];
    await removeEarlierSharedDirs(buildId);
    for (const image of images) {
      const sharedDir = await makeSharedDir(buildId);
      try {
        await image.write(join(sharedDir, IMAGE_ARCHIVE));
        observer.log(`[ibs] scanning ${image.digest}${images.length > 1 ? ` (${image.platform})` : ''} with ${scanner.run.image}\n`);
        const exitCode = await runner.run(scanner.image, scanner.run, sharedDir, observer, timeoutSeconds);
        observer.log(`[ibs] the scanner exited with code ${exitCode}\n`);
        scans.push({ platform: image.platform, digest: image.digest, exitCode, report: await this.readReport(sharedDir, exitCode, scanner, record) });
      } finally {
        await removeTree(sharedDir);
      }
    }
    return this.verdict(buildId, scans, scanner, record);
  }

  /** The report the scanner left; a missing or malformed one is recorded as a failed scan, then fails the build. */
  private async readReport(sharedDir: string, exitCode: number, scanner: PreparedScanner, record: (scan: ScanRecord) => Promise<void>): Promise<ScanReport> {
    try {
      return await readScanReport(join(sharedDir, SCAN_REPORT));
    } catch (err) {
      await record({ passed: false, reportUrl: null, summary: null, scanner: { image: scanner.configured, digest: scanner.image.digest }, exitCode });
      throw err;
    }
  }

  /** Stores the report (on failure too), records `scan`, and stops the build unless every scan exited 0. */
  private async verdict(buildId: string, scans: Scan[], scanner: PreparedScanner, record: (scan: ScanRecord) => Promise<void>): Promise<ScanRecord> {
    const [only] = scans;
    const body =
      scans.length === 1 && only
        ? only.report.body
        : Buffer.from(JSON.stringify({ platforms: scans.map((s) => ({ platform: s.platform, digest: s.digest, exitCode: s.exitCode, report: JSON.parse(s.report.body.toString('utf8')) as unknown })) }));
    const exitCode = scans.find((s) => s.exitCode !== 0)?.exitCode ?? 0;
    await this.deps.storage.put(scanReportKey(buildId), body, { contentType: 'application/json', contentLength: body.length });
    const reportUrl = await this.deps.destination.upload(buildId, body);
    const summary = mergeSummaries(scans.map((s) => s.report.summary));
    const scan: ScanRecord = { passed: exitCode === 0, reportUrl, summary, scanner: { image: scanner.configured, digest: scanner.image.digest }, exitCode };
    await record(scan);
    if (exitCode !== 0) {
      const which = scans.length > 1 ? ` on ${scans.filter((s) => s.exitCode !== 0).map((s) => s.platform).join(', ')}` : '';
      throw new BuildFailedError('scan_failed', `the image scanner stopped the build (exit code ${exitCode}${which}); nothing was pushed. Read the report with GET /v1/builds/${buildId}/scan-report, fix what it found and build again`);
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
