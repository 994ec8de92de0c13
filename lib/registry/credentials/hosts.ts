/** Which registry hosts get a provider's credentials: never more than the registries of its type. */
import type { RegistryType } from '../../config/registry';

/** Default hosts per type; private_registry has none, because its credentials are for whatever host is configured. */
const DEFAULT_CREDENTIAL_HOSTS: Record<RegistryType, string[] | undefined> = {
  private_registry: undefined,
  ecr: ['*.amazonaws.com', '*.amazonaws.com.cn'],
  acr: ['*.azurecr.io', '*.azurecr.cn', '*.azurecr.us'],
  gcr: ['gcr.io', '*.gcr.io', '*.pkg.dev'],
};

const ECR_HOST = /^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/;

/** Whether `host` (host[:port]) is matched by `pattern` (exact, or `*.suffix` for any subdomain). */
export function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return p === h;
}

export function hostAllowed(type: RegistryType, configured: string[] | undefined, host: string): boolean {
  const patterns = configured ?? DEFAULT_CREDENTIAL_HOSTS[type];
  if (!patterns) return true;
  // *.amazonaws.com would be too wide for ECR tokens: only registry hosts of ECR's own form qualify by default.
  if (type === 'ecr' && !configured) return ECR_HOST.test(host.toLowerCase());
  return patterns.some((p) => hostMatches(p, host));
}
