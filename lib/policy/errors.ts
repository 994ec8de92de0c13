/** A request the deployment's policy refuses; `code` is the stable error code (docs/errors.md), `field` the spec field. */
export class PolicyViolation extends Error {
  constructor(
    readonly code: PolicyViolationCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'PolicyViolation';
  }
}

export type PolicyViolationCode =
  | 'base_image_denied'
  | 'frontend_not_allowed'
  | 'proxy_arg_declared'
  | 'engine_not_allowed'
  | 'entitlement_not_allowed'
  | 'add_url_not_allowed'
  | 'target_registry_not_allowed'
  | 'target_repository_not_allowed'
  | 'image_of_another_consumer'
  | 'source_registry_not_allowed';
