/**
 * EC2 errors: a code such as `InvalidInstanceID.NotFound`, a message and the HTTP status EC2 uses
 * for it. CloudStack errors raised by the commands an action runs are translated by their status
 * (ec2Error), so a handler only throws an Ec2Error where EC2 has a more precise code.
 */
import { ApiError, ErrorCode } from '../errors.ts';

export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export const missingParameter = (name: string) =>
  new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);

export const invalidValue = (name: string, value: string, why: string) =>
  new Ec2Error('InvalidParameterValue', `Value (${value}) for parameter ${name} is invalid. ${why}`);

/** EC2's answer to a DryRun request that would have succeeded (HTTP 412, as EC2). */
export const dryRunOperation = () =>
  new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);

export const unauthorized = () =>
  new Ec2Error('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403);

export const authFailure = () =>
  new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials', 401);

/** The EC2 error a CloudStack failure becomes: by its CloudStack status. */
export function ec2Error(e: unknown): Ec2Error {
  if (e instanceof Ec2Error) return e;
  if (!(e instanceof ApiError)) return new Ec2Error('InternalError', 'An internal error has occurred', 500);
  switch (e.errorcode) {
    case ErrorCode.PARAM_ERROR:
    case ErrorCode.MALFORMED_PARAMETER:
    case ErrorCode.BAD_REQUEST:
      return new Ec2Error('InvalidParameterValue', e.message);
    case ErrorCode.UNAUTHORIZED:
      return authFailure();
    case ErrorCode.ACCOUNT_ERROR:
    case ErrorCode.UNSUPPORTED_ACTION:
      return new Ec2Error('UnauthorizedOperation', e.message, 403);
    case ErrorCode.API_LIMIT_EXCEED:
      return new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503);
    case ErrorCode.ACCOUNT_RESOURCE_LIMIT:
      return new Ec2Error('ResourceLimitExceeded', e.message);
    case ErrorCode.INSUFFICIENT_CAPACITY:
      return new Ec2Error('InsufficientInstanceCapacity', e.message, 500);
    case ErrorCode.RESOURCE_IN_USE:
      return new Ec2Error('IncorrectState', e.message);
    case ErrorCode.RESOURCE_UNAVAILABLE:
    case ErrorCode.SERVICE_UNAVAILABLE:
      return new Ec2Error('Unavailable', e.message, 503);
    default:
      return new Ec2Error('InternalError', e.message, 500);
  }
}
