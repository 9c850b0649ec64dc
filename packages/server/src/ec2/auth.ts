/**
 * Who an EC2 request comes from. The access key is the user's CloudStack API key and the secret
 * its secret key, found and opened the way the CloudStack API does (iam/caller.ts keyOwner).
 * Version 4 requests must be scoped to the configured region (ec2.region) and service `ec2`, and
 * dated within 15 minutes of the server's clock, as AWS requires; presigned Version 4 requests
 * (the X-Amz-* query parameters) are good from X-Amz-Date for X-Amz-Expires seconds (at most 7
 * days, as AWS). Version 2 requests carry a Timestamp within the same window or an Expires that
 * has not passed.
 */
import type { App, Caller } from '../context.ts';
import { isActive, keyOwner, loadCaller } from '../iam/caller.ts';
import { authFailure, Ec2Error } from './errors.ts';
import { EC2_REGION } from './settings.ts';
import {
  parseV4Authorization,
  parseV4Query,
  queryPairs,
  type SignedRequest,
  sameSignature,
  type V4Authorization,
  v2Signature,
  v4Signature,
} from './signature.ts';

/** AWS's limit on the difference between the request's time and the server's. */
export const MAX_SKEW_MS = 15 * 60 * 1000;
/** The longest validity of a presigned request (AWS's: 7 days). */
export const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600;

const mismatch = () =>
  new Ec2Error(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    403,
  );

const expired = () => new Ec2Error('RequestExpired', 'Request has expired.');

/** 20150830T123600Z → epoch ms. */
function parseAmzDate(s: string): number | undefined {
  const m = s.match(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/);
  if (!m) return undefined;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

async function callerOf(app: App, accessKey: string): Promise<{ caller: Caller; secret: string }> {
  const owner = await keyOwner(app, accessKey);
  const caller = owner ? await loadCaller(app, owner.userId) : undefined;
  if (!owner || !caller || !isActive(caller)) throw authFailure();
  return { caller, secret: owner.secret };
}

export async function authenticate(
  app: App,
  req: SignedRequest,
  params: [string, string][],
  now: number,
): Promise<Caller> {
  const header = req.headers.authorization;
  if (typeof header === 'string' && header.startsWith('AWS4-HMAC-SHA256')) return v4(app, req, header, now);
  const presigned = parseV4Query(queryPairs(req.query));
  if (presigned !== undefined) return v4Query(app, req, presigned, now);
  const sent = new Map(params);
  if (sent.has('Signature') && sent.has('AWSAccessKeyId')) return v2(app, req, params, sent, now);
  throw new Ec2Error('MissingAuthenticationToken', 'Request is missing Authentication Token', 401);
}

async function v4(app: App, req: SignedRequest, header: string, now: number): Promise<Caller> {
  const auth = parseV4Authorization(header);
  if (!auth) throw new Ec2Error('IncompleteSignature', 'The Authorization header is malformed.');
  const amzDate = (req.headers['x-amz-date'] as string | undefined) ?? '';
  const at = parseAmzDate(amzDate);
  if (at === undefined)
    throw new Ec2Error(
      'IncompleteSignature',
      'The request must carry an X-Amz-Date header (YYYYMMDDTHHMMSSZ).',
    );
  if (Math.abs(at - now) > MAX_SKEW_MS) throw expired();
  return checkV4(app, req, auth, amzDate);
}

/** A presigned request: the signature and its scope are query parameters, X-Amz-Signature excluded from what is signed. */
async function v4Query(
  app: App,
  req: SignedRequest,
  presigned: NonNullable<ReturnType<typeof parseV4Query>>,
  now: number,
): Promise<Caller> {
  if ('problem' in presigned) throw new Ec2Error('IncompleteSignature', presigned.problem);
  const at = parseAmzDate(presigned.amzDate);
  if (at === undefined)
    throw new Ec2Error('IncompleteSignature', 'X-Amz-Date must be a time such as 20261206T102600Z.');
  const expires = Number(presigned.expires);
  if (!/^\d+$/.test(presigned.expires) || expires < 1 || expires > MAX_PRESIGNED_SECONDS)
    throw new Ec2Error(
      'InvalidParameterValue',
      `X-Amz-Expires must be a number of seconds from 1 to ${MAX_PRESIGNED_SECONDS}.`,
    );
  // Signed in the future beyond the allowed skew, or past its validity.
  if (at - now > MAX_SKEW_MS)
    throw new Ec2Error('RequestExpired', 'Request is not yet valid: X-Amz-Date is in the future.');
  if (now > at + expires * 1000) throw expired();
  const unsigned = queryPairs(req.query).filter(([k]) => k !== 'X-Amz-Signature');
  return checkV4(
    app,
    { ...req, query: new URLSearchParams(unsigned).toString() },
    presigned,
    presigned.amzDate,
  );
}

/** The scope, the signed headers and the signature of a Version 4 request, header or presigned. */
async function checkV4(
  app: App,
  req: SignedRequest,
  auth: V4Authorization,
  amzDate: string,
): Promise<Caller> {
  if (!auth.signedHeaders.includes('host'))
    throw new Ec2Error('IncompleteSignature', 'The host header must be signed.');
  const region = app.settings.get(EC2_REGION);
  if (auth.region !== region)
    throw new Ec2Error(
      'AuthFailure',
      `Credential should be scoped to a valid region, not '${auth.region}'; this cloud's region is '${region}'.`,
      401,
    );
  if (auth.service !== 'ec2' || auth.terminator !== 'aws4_request' || auth.date !== amzDate.slice(0, 8))
    throw new Ec2Error(
      'AuthFailure',
      "Credential should be scoped to the request's date, service 'ec2' and 'aws4_request'.",
      401,
    );
  const { caller, secret } = await callerOf(app, auth.accessKey);
  if (!sameSignature(v4Signature(req, auth, amzDate, secret), auth.signature)) throw mismatch();
  return caller;
}

async function v2(
  app: App,
  req: SignedRequest,
  params: [string, string][],
  sent: Map<string, string>,
  now: number,
): Promise<Caller> {
  if (sent.get('SignatureVersion') !== '2')
    throw new Ec2Error(
      'InvalidParameterValue',
      'Only SignatureVersion 2 is accepted with a Signature parameter.',
    );
  const method = sent.get('SignatureMethod');
  if (method !== 'HmacSHA256' && method !== 'HmacSHA1')
    throw new Ec2Error('InvalidParameterValue', 'SignatureMethod must be HmacSHA256 or HmacSHA1.');
  const timestamp = sent.get('Timestamp');
  const expires = sent.get('Expires');
  if (timestamp === undefined && expires === undefined)
    throw new Ec2Error('MissingParameter', 'The request must contain the parameter Timestamp or Expires');
  if (timestamp !== undefined && expires !== undefined)
    throw new Ec2Error('InvalidParameterCombination', 'Timestamp and Expires cannot be given together.');
  const at = Date.parse((timestamp ?? expires)!);
  if (Number.isNaN(at))
    throw new Ec2Error('InvalidParameterValue', 'Timestamp or Expires is not an ISO 8601 time.');
  if (timestamp !== undefined ? Math.abs(at - now) > MAX_SKEW_MS : at < now) throw expired();
  const { caller, secret } = await callerOf(app, sent.get('AWSAccessKeyId')!);
  const given = sent.get('Signature')!;
  if (!sameSignature(v2Signature(req, params, secret, method), given)) throw mismatch();
  return caller;
}
