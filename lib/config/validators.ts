/**
 * Small single-purpose checks of one value each. They answer true/false (or a parsed value) and never build error
 * messages: the reader that calls them names the variable and says what is expected.
 */

/** A Kubernetes object name (RFC 1123 subdomain), as Secrets and SCCs must have. */
export function isKubernetesName(value: string): boolean {
  return value.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value);
}

/** An exact host name, optionally with a port; no wildcard, no scheme, no path. */
export function isHostName(value: string): boolean {
  return /^(?=.{1,253}(:|$))[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*(:\d{1,5})?$/.test(value);
}

export function isHttpUrl(value: string): boolean {
  return /^https?:\/\/[^\s/]+/.test(value);
}

/** An image repository without tag or digest: `registry.example/team/image-builder`. */
export function isImageRepository(value: string): boolean {
  return /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/.test(value) && !value.endsWith(':');
}

/** An image reference with a tag and/or digest: `registry.example/team/kaniko:1.2.3` or `...@sha256:<hex>`. */
export function isImageReference(value: string): boolean {
  const match = /^([^@]+?)(?::([\w][\w.-]{0,127}))?(?:@sha256:[a-f0-9]{64})?$/.exec(value);
  if (!match || !match[1]) return false;
  const hasTagOrDigest = Boolean(match[2]) || value.includes('@sha256:');
  return hasTagOrDigest && isImageRepository(match[1]);
}

/** An image tag: `1.2.3`, `11.7.0-rc1`. */
export function isImageTag(value: string): boolean {
  return /^[\w][\w.-]{0,127}$/.test(value);
}

/** An AWS region such as `us-east-1` or `us-gov-west-1`. */
export function isAwsRegion(value: string): boolean {
  return /^[a-z]{2}(-[a-z]+)+-\d+$/.test(value);
}

/** The region inside an AWS Signer signing-profile ARN, or undefined when the value is not such an ARN. */
export function signerProfileRegion(value: string): string | undefined {
  // Loose on the account and name: the operator documentation's own example has a 10-digit account and hyphens.
  const match = /^arn:aws[a-z-]*:signer:([a-z0-9-]+):\d+:\/signing-profiles\/[\w-]+(\/[\w-]+)?$/.exec(value);
  return match?.[1];
}

/**
 * An image-URI pattern of the allow/deny lists: a registry and path where `*` stands for any characters,
 * such as `docker.io/datarobot/*` or `*.dkr.ecr.us-east-1.amazonaws.com/*`.
 */
export function isImagePattern(value: string): boolean {
  return /^[A-Za-z0-9*][A-Za-z0-9._\-:/@*]*$/.test(value) && !value.includes('://');
}

/** A comma-separated list: items trimmed, empty items dropped. */
export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** A JSON array of strings, or undefined when the value is not one. */
export function parseJsonStringArray(value: string): string[] | undefined {
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON object whose values are strings, or undefined when the value is not one. */
export function parseJsonStringMap(value: string): Record<string, string> | undefined {
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    return Object.values(parsed).every((item) => typeof item === 'string') ? (parsed as Record<string, string>) : undefined;
  } catch {
    return undefined;
  }
}

/** An environment variable name, as the scanner's env keys must be. */
export function isEnvName(value: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(value);
}

/** Where scan reports are uploaded: `s3://bucket/prefix`, `gs://…`, `az://container/prefix`, or an http(s) URL. */
export function isReportUploadPath(value: string): boolean {
  return /^(s3|gs|az|https?):\/\/[^\s/]+(\/\S*)?$/.test(value);
}

/** An ECR registry host: `<account>.dkr.ecr.<region>.amazonaws.com` (optionally `.com.cn`). */
export function isEcrHost(value: string): boolean {
  return /^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/.test(value);
}
