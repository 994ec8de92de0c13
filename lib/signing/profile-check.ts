/**
 * The worker's start-up check of the AWS Signer signing profile (NOTATION_PROFILE with the AWS Signer plugin):
 * it exists, is Active, signs for Notation, lives in NOTATION_REGION, and the caller may read it. Each problem is
 * said plainly, so an operator learns it before the first build fails to sign.
 */
import { GetSigningProfileCommand, SignerClient } from '@aws-sdk/client-signer';

export interface ProfileCheckInput {
  profile: string;
  region: string;
}

export class SigningProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningProfileError';
  }
}

const NOTATION_PLATFORM = 'Notation-OCI-SHA384-ECDSA';

export async function checkSigningProfile(input: ProfileCheckInput, client = new SignerClient({ region: input.region })): Promise<void> {
  const match = /^arn:aws[a-z-]*:signer:([a-z0-9-]+):(\d+):\/signing-profiles\/([\w-]+)/.exec(input.profile);
  if (!match) throw new SigningProfileError(`NOTATION_PROFILE (${input.profile}) is not an AWS Signer signing-profile ARN`);
  const [, region, account, name] = match;
  if (region !== input.region) {
    throw new SigningProfileError(`the signing profile ${name} is in ${region}, but NOTATION_REGION is ${input.region}; set NOTATION_REGION=${region}`);
  }
  let profile;
  try {
    profile = await client.send(new GetSigningProfileCommand({ profileName: name, profileOwner: account }));
  } catch (err) {
    const kind = (err as { name?: string }).name;
    if (kind === 'ResourceNotFoundException') {
      throw new SigningProfileError(`the signing profile ${name} does not exist in account ${account}, region ${region}; create it (platform ${NOTATION_PLATFORM}) or fix NOTATION_PROFILE`);
    }
    if (kind === 'AccessDeniedException' || kind === 'UnrecognizedClientException' || kind === 'InvalidSignatureException') {
      throw new SigningProfileError(`the worker's AWS identity may not use the signing profile ${name} (${kind}); grant it signer:GetSigningProfile and signer:SignPayload on ${input.profile}`);
    }
    throw new SigningProfileError(`AWS Signer in ${region} could not be asked about the signing profile ${name}: ${(err as Error).message}`);
  }
  if (profile.status !== 'Active') {
    throw new SigningProfileError(`the signing profile ${name} is ${profile.status ?? 'in an unknown state'}, not Active; use an active profile in NOTATION_PROFILE`);
  }
  if (profile.platformId && profile.platformId !== NOTATION_PLATFORM) {
    throw new SigningProfileError(`the signing profile ${name} signs for ${profile.platformId}, not ${NOTATION_PLATFORM}; create a Notation signing profile`);
  }
}
