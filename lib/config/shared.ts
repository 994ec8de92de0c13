/** Settings that more than one section uses, read once so that the sections cannot read them differently. */
import type { EnvReader } from './env-reader';
import type { ResolvedSpringProfile } from './spring-profile';
import { isAwsRegion } from './validators';

export interface SharedSettings {
  /** Skip TLS verification towards MinIO/S3 and the registries (ALLOW_SELF_SIGNED_CERTS). */
  allowSelfSignedCerts: boolean;
  /** AWS_REGION, else AWS_DEFAULT_REGION (the AWS SDK's order); read only for the s3 storage and ecr registry types. */
  awsRegion?: string;
}

export function readSharedSettings(read: EnvReader, profile: ResolvedSpringProfile): SharedSettings {
  const needsAws = profile.parsed.storage === 's3' || profile.parsed.registry === 'ecr';
  const expected = 'an AWS region such as us-east-1';
  return {
    allowSelfSignedCerts: read.boolean('ALLOW_SELF_SIGNED_CERTS', false),
    awsRegion: needsAws
      ? read.matching('AWS_REGION', isAwsRegion, expected) ?? read.matching('AWS_DEFAULT_REGION', isAwsRegion, expected)
      : undefined,
  };
}
