/**
 * Google Container / Artifact Registry: with `_json_key` and the raw service-account JSON, google-auth-library
 * trades the key for a short-lived access token (the signed JWT-bearer grant; it keeps the token and renews it before
 * it expires), handed out as `oauth2accesstoken`, so the key itself never leaves the worker. An access token given
 * as the password is used as it is.
 */
import { JWT } from 'google-auth-library';
import type { RegistryCredentials } from '../auth';
import { GOOGLE_ACCESS_TOKEN_USERNAME, JSON_KEY_USERNAME, serviceAccountKeyProblem, type GcrConfig } from '../config';
import { RegistryError } from '../errors';
import { cloudFailure } from './http';

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** Where google-auth-library sends the grant; GOOGLE_OAUTH_TOKEN_URL replaces it (a private endpoint). */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

export class GcrCredentials {
  /** Absent when the password already is an access token. */
  private readonly serviceAccount?: JWT;

  constructor(
    config: GcrConfig,
    username: string,
    private readonly password: string,
  ) {
    if (username !== JSON_KEY_USERNAME) return;
    const problem = serviceAccountKeyProblem(password);
    if (problem) throw new RegistryError('registry_credentials_unavailable', `DOCKERHUB_PASSWORD ${problem}`, false);
    const key = JSON.parse(password) as { client_email: string; private_key: string; private_key_id?: string };
    this.serviceAccount = new JWT({ email: key.client_email, key: key.private_key, keyId: key.private_key_id, scopes: [SCOPE] });
    const { tokenUrl } = config;
    if (tokenUrl) {
      // The library has no setting for the token endpoint; its transporter is the documented place to reroute it.
      this.serviceAccount.transporter.interceptors.request.add({
        resolved: async (request) => (request.url.href === GOOGLE_TOKEN_URL ? { ...request, url: new URL(tokenUrl) } : request),
      });
    }
  }

  async current(): Promise<RegistryCredentials> {
    if (!this.serviceAccount) return { username: GOOGLE_ACCESS_TOKEN_USERNAME, password: this.password };
    const { token } = await this.serviceAccount.getAccessToken().catch((err: unknown) => {
      throw cloudFailure('Google OAuth2', err, 'check that the service-account key in DOCKERHUB_PASSWORD is current (not deleted or disabled)');
    });
    if (!token) throw new RegistryError('registry_credentials_unavailable', 'Google OAuth2 answered without an access token; check GOOGLE_OAUTH_TOKEN_URL', true);
    return { username: GOOGLE_ACCESS_TOKEN_USERNAME, password: token };
  }
}
