/**
 * Options of the API's HTTP server. Node ends any request that takes longer than `requestTimeout` (300 s by
 * default) with a reset connection, which cut off a 1 GiB image upload on a busy machine; image archives may be
 * 10 GiB (IMAGE_ARCHIVE_MAX_BYTES), so the whole request gets two hours. Headers must still arrive within
 * `headersTimeout` (Node's 60 s), so an idle connection does not hold a slot.
 */
export const API_SERVER_OPTIONS = { requestTimeout: 2 * 60 * 60 * 1000 };
