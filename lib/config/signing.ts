/** Signing of pushed images (IMAGE_SIGNER_TYPE); only notation, as the operator documentation describes. */
import type { EnvReader } from './env-reader';
import { isAwsRegion, signerProfileRegion } from './validators';

export type SigningConfig =
  | { type: 'none' }
  | {
      type: 'notation';
      profile: string;
      plugin: string;
      region: string;
      /** The notation CLI (NOTATION_CLI_PATH). */
      notationPath: string;
      /** XDG_CONFIG_HOME for notation: its keys, plugins, trust store and trust policy (NOTATION_CONFIG_HOME). */
      configHome?: string;
      /**
       * notation configuration linked into the config home where that lacks it: plugins, trust store, keys
       * (NOTATION_DEFAULTS_DIR; the service image installs the plugins under ~/.config/notation).
       */
      defaultsDir?: string;
      /** The trust store holding the profile's certificate, for `notation verify` (NOTATION_TRUST_STORE). */
      trustStore: string;
    };

export function readSigning(read: EnvReader): SigningConfig {
  const type = read.raw('IMAGE_SIGNER_TYPE');
  if (type === undefined) return { type: 'none' };
  if (type !== 'notation') {
    read.invalid('IMAGE_SIGNER_TYPE', 'must be "notation" or unset (no signing)', type);
    return { type: 'none' };
  }
  const why = 'when IMAGE_SIGNER_TYPE=notation';
  const profile = read.requiredWhen('NOTATION_PROFILE', why);
  const plugin = read.requiredWhen('NOTATION_PLUGIN', why);
  const region = read.requiredWhen('NOTATION_REGION', why);
  if (region && !isAwsRegion(region)) read.invalid('NOTATION_REGION', 'must be an AWS region such as us-east-1', region);
  if (profile && plugin === 'com.amazonaws.signer.notation.plugin') {
    const profileRegion = signerProfileRegion(profile);
    if (!profileRegion) {
      read.invalid('NOTATION_PROFILE', 'must be an AWS Signer signing-profile ARN such as arn:aws:signer:us-east-1:123456789012:/signing-profiles/name', profile);
    } else if (region && profileRegion !== region) {
      read.problems.push(`NOTATION_REGION (${region}) must match the region of the signing profile in NOTATION_PROFILE (${profileRegion})`);
    }
  }
  const defaultTrustStore = plugin === 'com.amazonaws.signer.notation.plugin' ? 'signingAuthority:aws-signer-ts' : `ca:${profile}`;
  const trustStore = read.string('NOTATION_TRUST_STORE', defaultTrustStore);
  if (!/^(ca|signingAuthority|tsa):[\w.-]+$/.test(trustStore)) read.invalid('NOTATION_TRUST_STORE', 'must be <type>:<name> with type ca, signingAuthority or tsa', trustStore);
  return {
    type,
    profile,
    plugin,
    region,
    notationPath: read.string('NOTATION_CLI_PATH', 'notation'),
    configHome: read.optional('NOTATION_CONFIG_HOME'),
    defaultsDir: read.optional('NOTATION_DEFAULTS_DIR'),
    trustStore,
  };
}
