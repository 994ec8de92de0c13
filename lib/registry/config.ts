/**
 * The registry settings as the registry code sees them. They are read with the rest of the configuration by
 * lib/config (its registry section, lib/config/registry.ts), once and with its rules; callers pass
 * `loadConfig().registry` to the credential providers. Nothing here reads the environment.
 */
export type { AcrConfig, EcrConfig, GcrConfig, RegistryConfig, RegistryType } from '../config/registry';
export { GOOGLE_ACCESS_TOKEN_USERNAME, JSON_KEY_USERNAME, serviceAccountKeyProblem } from '../config/registry';
