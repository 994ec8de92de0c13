/** The image scanner run on a built image before it is pushed (imageBuilder.imageScanner in the chart). */
import type { EnvReader } from './env-reader';
import type { ResourceQuantities } from './kubernetes';
import { isEnvName, isImageReference, isReportUploadPath } from './validators';

type ScannerQuantities = Pick<ResourceQuantities, 'cpu' | 'memory'>;

export interface ImageScannerConfig {
  enabled: boolean;
  image?: string;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  reportUploadPath?: string;
  resources: { requests: ScannerQuantities; limits: ScannerQuantities };
}

export function readImageScanner(read: EnvReader): ImageScannerConfig {
  const enabled = read.boolean('IMAGE_BUILDER_SCANNER_ENABLED', false);
  const image = read.matching('IMAGE_BUILDER_SCANNER_IMAGE', isImageReference, 'a full image reference with a tag or digest, such as registry.example/scanner:v1.0.0');
  if (enabled && !read.raw('IMAGE_BUILDER_SCANNER_IMAGE')) read.problems.push('IMAGE_BUILDER_SCANNER_IMAGE is required when IMAGE_BUILDER_SCANNER_ENABLED=true but not set');
  const env = read.jsonStringMap('IMAGE_BUILDER_SCANNER_ENV');
  const badNames = Object.keys(env).filter((name) => !isEnvName(name));
  if (badNames.length > 0) read.problems.push(`IMAGE_BUILDER_SCANNER_ENV has keys that are not variable names: ${badNames.join(', ')}`);
  return {
    enabled,
    image,
    command: read.jsonStringArray('IMAGE_BUILDER_SCANNER_COMMAND'),
    args: read.jsonStringArray('IMAGE_BUILDER_SCANNER_ARGS'),
    env,
    reportUploadPath: read.matching('IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH', isReportUploadPath, 'a location such as s3://bucket/scan-reports, gs://…, az://… or an http(s) URL'),
    resources: {
      requests: {
        cpu: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_CPU', '250m'),
        memory: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_MEMORY', '256Mi'),
      },
      limits: {
        cpu: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU', '500m'),
        memory: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_MEMORY', '512Mi'),
      },
    },
  };
}
