/**
 * The one error type that crosses the API. Every failure a caller can see is an ApiError with a
 * CloudStack error code (also the HTTP status) and a cserrorcode naming the upstream exception class.
 */
export const ErrorCode = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  /** A session that still owes its two-factor code called something else (upstream's UNAUTHORIZED2FA). */
  UNAUTHORIZED_2FA: 511,
  METHOD_NOT_ALLOWED: 405,
  API_LIMIT_EXCEED: 429,
  MALFORMED_PARAMETER: 430,
  PARAM_ERROR: 431,
  UNSUPPORTED_ACTION: 432,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_ERROR: 530,
  ACCOUNT_ERROR: 531,
  ACCOUNT_RESOURCE_LIMIT: 532,
  INSUFFICIENT_CAPACITY: 533,
  RESOURCE_UNAVAILABLE: 534,
  RESOURCE_ALLOCATION: 535,
  RESOURCE_IN_USE: 536,
  NETWORK_RULE_CONFLICT: 537,
} as const;

/** cserrorcode values: the upstream exception class each kind of failure maps to. */
export const CsErrorCode = {
  CLOUD_RUNTIME: 4250,
  ACCOUNT_LIMIT: 4280,
  AGENT_UNAVAILABLE: 4285,
  AUTHENTICATION: 4290,
  CONCURRENT_OPERATION: 4300,
  INSUFFICIENT_CAPACITY: 4325,
  INSUFFICIENT_SERVER_CAPACITY: 4335,
  INSUFFICIENT_STORAGE_CAPACITY: 4340,
  INVALID_PARAMETER: 4350,
  PERMISSION_DENIED: 4365,
  RESOURCE_ALLOCATION: 4370,
  RESOURCE_IN_USE: 4375,
  RESOURCE_UNAVAILABLE: 4380,
  UNSUPPORTED_SERVICE: 4390,
  REQUEST_LIMIT: 4545,
  UNAVAILABLE_COMMAND: 4555,
  OPERATION_TIMED_OUT: 4560,
  SERVER_API: 9999,
} as const;

export interface UuidRef {
  uuid: string;
  description: string;
}

export class ApiError extends Error {
  constructor(
    readonly errorcode: number,
    readonly cserrorcode: number,
    message: string,
    readonly uuidList: UuidRef[] = [],
  ) {
    super(message);
  }
}

export const invalidParameter = (text: string, refs: UuidRef[] = []) =>
  new ApiError(ErrorCode.PARAM_ERROR, CsErrorCode.INVALID_PARAMETER, text, refs);
export const permissionDenied = (text: string) =>
  new ApiError(ErrorCode.ACCOUNT_ERROR, CsErrorCode.PERMISSION_DENIED, text);
export const unauthorized = (text = 'unable to verify user credentials and/or request signature') =>
  new ApiError(ErrorCode.UNAUTHORIZED, CsErrorCode.SERVER_API, text);
export const unsupported = (text: string) =>
  new ApiError(ErrorCode.UNSUPPORTED_ACTION, CsErrorCode.UNAVAILABLE_COMMAND, text);
export const resourceInUse = (text: string) =>
  new ApiError(ErrorCode.RESOURCE_IN_USE, CsErrorCode.RESOURCE_IN_USE, text);
export const resourceUnavailable = (text: string) =>
  new ApiError(ErrorCode.RESOURCE_UNAVAILABLE, CsErrorCode.RESOURCE_UNAVAILABLE, text);
export const internalError = (text: string) =>
  new ApiError(ErrorCode.INTERNAL_ERROR, CsErrorCode.CLOUD_RUNTIME, text);
/**
 * An exceeded resource limit. Upstream's limit check throws ResourceAllocationException, which the
 * API answers with 535 (cserrorcode 4370); 532 belongs to AccountLimitException, which no limit
 * check throws.
 */
export const limitExceeded = (text: string) =>
  new ApiError(ErrorCode.RESOURCE_ALLOCATION, CsErrorCode.RESOURCE_ALLOCATION, text);
export const insufficientCapacity = (text: string) =>
  new ApiError(ErrorCode.INSUFFICIENT_CAPACITY, CsErrorCode.INSUFFICIENT_CAPACITY, text);

/**
 * A unique key refused a row: two requests raced for one name or key, and the existence check of
 * each passed before the other's insert (SQLite, PostgreSQL and MySQL/MariaDB codes).
 */
function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return (
    code === '23505' ||
    code === 'ER_DUP_ENTRY' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  );
}

/**
 * Turns anything thrown into an ApiError; unexpected errors become a 530 that hides internals. A
 * unique-key violation (a concurrent request took the name first) is the caller's conflict: 431,
 * as the existence checks answer when the requests come one after the other.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isUniqueViolation(e))
    return invalidParameter(
      'An entity with the same name or key already exists: another request created it at the same time',
    );
  return internalError('Internal error executing command, please contact your system administrator');
}
