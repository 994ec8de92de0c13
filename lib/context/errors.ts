export type ContextRejectionCode =
  | 'context_invalid_archive'
  | 'context_absolute_path'
  | 'context_path_traversal'
  | 'context_link_escape'
  | 'context_path_through_link'
  | 'context_hardlink_invalid'
  | 'context_special_file'
  | 'context_duplicate_entry'
  | 'context_too_large'
  | 'context_too_many_entries'
  | 'context_compression_ratio_exceeded'
  | 'context_backslash_path'
  | 'context_encrypted_entry'
  | 'context_unsupported_compression'
  | 'context_zip64_unsupported';

/** Longest entry name or link target kept in an error; archive names are attacker-chosen and may be huge. */
const MAX_QUOTED_LENGTH = 200;

/**
 * The build context was refused. `message` says what was wrong and how to fix it, so the API can show it
 * to the user as is; `entry` is the offending archive entry name (as found in the archive) when there is one.
 */
export class ContextRejectedError extends Error {
  override readonly name = 'ContextRejectedError';

  constructor(
    readonly code: ContextRejectionCode,
    message: string,
    readonly entry?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Quotes an archive-supplied name for an error message: control characters are escaped so a name cannot
 * forge extra lines in logs or responses, and long names are shortened.
 */
export function quote(name: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  const visible = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const shortened = visible.length > MAX_QUOTED_LENGTH ? `${visible.slice(0, MAX_QUOTED_LENGTH)}...` : visible;
  return `'${shortened}'`;
}

export function invalidArchive(problem: string, entry?: string, cause?: unknown): ContextRejectedError {
  return new ContextRejectedError(
    'context_invalid_archive',
    `${problem}; send the build context as a tar, gzip-compressed tar or zip archive (for example \`tar -czf context.tar.gz -C <dir> .\`)`,
    entry,
    cause === undefined ? undefined : { cause },
  );
}
