/** HTTP for the cloud credential exchanges: the registry transport, with failures named after the exchange. */
import type { Response } from 'undici';
import { RegistryError } from '../errors';
import type { Transport } from '../transport';

export async function exchange(transport: Transport, what: string, url: string, init: { method: string; headers: Record<string, string>; body: string }): Promise<Response> {
  const host = new URL(url).host;
  try {
    return await transport.send(host, url, () => ({ ...init }));
  } catch (err) {
    const e = err as RegistryError;
    const fix = e.code === 'registry_tls_failed' ? e.message : `check that ${host} is reachable from the worker`;
    throw new RegistryError('registry_credentials_unavailable', `${what} at ${host} failed (${e.code ?? 'network error'}); ${fix}`, e.retryable ?? true);
  }
}

/** A failed exchange: rejected credentials are the user's to fix, anything else may pass. */
export function exchangeFailed(what: string, res: Response, detail: string, fix: string): RegistryError {
  const rejected = res.status === 400 || res.status === 401 || res.status === 403;
  return new RegistryError(
    rejected ? 'registry_unauthorized' : 'registry_credentials_unavailable',
    `${what} answered ${res.status}${detail ? ` (${detail})` : ''}; ${fix}`,
    res.status === 429 || res.status >= 500,
  );
}

/** A short identifier (an error code such as InvalidIdentityToken or AADSTS7000215), never free text. */
export function safeCode(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : '';
}
