import {
  isHostName,
  isHttpUrl,
  isKubernetesName,
  parseJsonStringArray,
  parseJsonStringMap,
  splitList,
} from './validators';
import { isQuantity } from './quantity';

export type Env = Record<string, string | undefined>;

/** Variables whose values are credentials: their values never appear in a message. */
function isSecretVariable(name: string): boolean {
  // Proxy and mirror URLs may carry user:password@.
  return /PASSWORD|SECRET_KEY|ACCOUNT_KEY|CONNECTION_STRING|SAS_TOKEN|TOKEN|ENCRYPTION_KEYS|CREDENTIALS_JSON|SCANNER_ENV|_HTTP_PROXY$|_PYTHON_INDEX$|_CRAN_MIRROR$/.test(name);
}

/**
 * Reads variables and collects every problem, so one start-up reports all of them at once. Each problem names the
 * variable and says what is expected; the offending value is quoted only when the variable holds no secret.
 */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private got(name: string, raw: string): string {
    return isSecretVariable(name) ? '(value hidden: it is a secret)' : `(got "${raw}")`;
  }

  /** Records a problem about a value that is set. */
  invalid(name: string, expected: string, raw: string): void {
    this.problems.push(`${name} ${expected} ${this.got(name, raw)}`);
  }

  /**
   * The value when the variable is present, even empty: for lists and SELinux types an explicit empty value
   * (values.yaml `add: []`, `seLinuxType: ""`) means "none", not "the default".
   */
  present(name: string): string | undefined {
    return this.env[name]?.trim();
  }

  raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value ? value : undefined;
  }

  string(name: string, fallback?: string): string {
    const value = this.raw(name);
    if (value) return value;
    if (fallback !== undefined) return fallback;
    this.problems.push(`${name} is required but not set`);
    return '';
  }

  /** A value required only in some configurations; `why` says which (e.g. `when IMAGE_SIGNER_TYPE=notation`). */
  requiredWhen(name: string, why: string): string {
    const value = this.raw(name);
    if (!value) this.problems.push(`${name} is required ${why} but not set`);
    return value ?? '';
  }

  optional(name: string): string | undefined {
    return this.raw(name);
  }

  /** The value exactly as given, for secrets such as a service-account JSON; unset or empty gives undefined. */
  untrimmed(name: string): string | undefined {
    return this.env[name] ? this.env[name] : undefined;
  }

  integer(name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.raw(name);
    if (!raw) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.invalid(name, `must be a whole number between ${min} and ${max}`, raw);
      return fallback;
    }
    return value;
  }

  optionalInteger(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.raw(name) === undefined ? undefined : this.integer(name, min, min, max);
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.raw(name)?.toLowerCase();
    if (!raw) return fallback;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    this.invalid(name, 'must be "true" or "false"', raw);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.raw(name);
    if (!raw) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.invalid(name, `must be one of ${allowed.join(', ')}`, raw);
    return fallback;
  }

  url(name: string, fallback?: string): string {
    const value = this.string(name, fallback);
    if (value && !isHttpUrl(value)) this.invalid(name, 'must be an http:// or https:// URL such as http://minio:9000', value);
    return value.replace(/\/+$/, '');
  }

  optionalUrl(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!isHttpUrl(value)) this.invalid(name, 'must be an http:// or https:// URL', value);
    return value.replace(/\/+$/, '');
  }

  /** A value checked by `valid`; `expected` completes "NAME must be …". */
  matching(name: string, valid: (value: string) => boolean, expected: string, fallback?: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!valid(value)) {
      this.invalid(name, `must be ${expected}`, value);
      return fallback;
    }
    return value;
  }

  /** A value required in some configurations (`why`, as for requiredWhen) and checked by `valid`; '' when missing or invalid. */
  requiredMatching(name: string, valid: (value: string) => boolean, expected: string, why: string): string {
    if (this.raw(name) === undefined) return this.requiredWhen(name, why);
    return this.matching(name, valid, expected) ?? '';
  }

  quantity(name: string, fallback: string): string {
    return this.optionalQuantity(name) ?? fallback;
  }

  /** Unset, or set to something that is not a quantity (a problem then), gives undefined. */
  optionalQuantity(name: string): string | undefined {
    return this.matching(name, isQuantity, 'a Kubernetes quantity such as 1, 500m, 1G or 512Mi');
  }

  /** A comma-separated list whose items all pass `valid`. Unset gives `fallback`; so does empty unless `emptyMeansNone`. */
  list(name: string, fallback: string[], valid: (item: string) => boolean, expected: string, emptyMeansNone = false): string[] {
    const raw = emptyMeansNone ? this.present(name) : this.raw(name);
    if (raw === undefined) return fallback;
    const items = splitList(raw);
    const bad = items.filter((item) => !valid(item));
    if (bad.length > 0) {
      this.problems.push(`${name} must be a comma-separated list of ${expected} (invalid: ${isSecretVariable(name) ? 'hidden' : bad.map((b) => `"${b}"`).join(', ')})`);
      return fallback;
    }
    return items;
  }

  kubernetesNames(name: string): string[] {
    return this.list(name, [], isKubernetesName, 'Kubernetes secret names (lower-case letters, digits, "-" and ".")');
  }

  hostNames(name: string): string[] {
    return this.list(name, [], isHostName, 'exact host names without wildcards, such as repo1.myregistry.com');
  }

  jsonStringArray(name: string): string[] | undefined {
    const raw = this.raw(name);
    if (raw === undefined) return undefined;
    const parsed = parseJsonStringArray(raw);
    if (!parsed) this.invalid(name, 'must be a JSON array of strings such as ["/bin/sh","-c"]', raw);
    return parsed;
  }

  jsonStringMap(name: string): Record<string, string> {
    const raw = this.raw(name);
    if (raw === undefined) return {};
    const parsed = parseJsonStringMap(raw);
    if (!parsed) {
      this.invalid(name, 'must be a JSON object of string values such as {"SNYK_TOKEN":"…"}', raw);
      return {};
    }
    return parsed;
  }
}
