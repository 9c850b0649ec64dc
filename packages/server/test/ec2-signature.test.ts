/**
 * EC2 request signatures: AWS's published Signature Version 4 vector, and requests signed by
 * botocore itself (SigV4Auth, SigV2Auth: the code the AWS CLI and boto3 sign with) checked by
 * our verifier; a changed byte anywhere fails.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseV4Authorization, type SignedRequest, v2Signature, v4Signature } from '../src/ec2/signature.ts';

const PYTHON = '/usr/bin/python3';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

describe('Signature Version 4', () => {
  test("AWS's get-vanilla vector", () => {
    const req: SignedRequest = {
      method: 'GET',
      path: '/',
      query: '',
      headers: { host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z' },
      body: '',
    };
    const auth = parseV4Authorization(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
    assert.ok(auth);
    assert.equal(auth.accessKey, 'AKIDEXAMPLE');
    assert.equal(v4Signature(req, auth, '20150830T123600Z', SECRET), auth.signature);
    assert.notEqual(v4Signature(req, auth, '20150830T123600Z', `${SECRET}x`), auth.signature);
  });

  test('malformed Authorization headers are not parsed', () => {
    assert.equal(
      parseV4Authorization('AWS4-HMAC-SHA256 Credential=AK/2015/us/ec2, SignedHeaders=host, Signature=ab'),
      undefined,
    );
    assert.equal(parseV4Authorization('AWS AK:sig'), undefined);
  });
});

describe('requests botocore signs', { skip: !existsSync(PYTHON) }, () => {
  // One python run signs a form POST (V4 and V2) as botocore does for EC2; prints what it sent.
  const script = `
import json, sys, datetime
from botocore.auth import SigV4Auth, SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
creds = Credentials('AKIDEXAMPLE', sys.argv[1])
body = 'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=web%20%2A%7E'
r4 = AWSRequest(method='POST', url='http://127.0.0.1:8080/awsapi', data=body,
                headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
SigV4Auth(creds, 'ec2', 'nimbostack').add_auth(r4)
r2 = AWSRequest(method='POST', url='http://127.0.0.1:8080/awsapi',
                data={'Action': 'DescribeInstances', 'Version': '2016-11-15', 'Tag.1.Key': 'a b*(~)'})
SigV2Auth(creds).add_auth(r2)
print(json.dumps({'v4': {'headers': dict(r4.headers), 'body': body}, 'v2': r2.data}))
`;
  let signed: any;
  const out = () =>
    (signed ??= JSON.parse(execFileSync(PYTHON, ['-c', script, SECRET], { encoding: 'utf8' })));

  test('Version 4 form POST', () => {
    const { v4 } = out();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(v4.headers)) headers[k.toLowerCase()] = String(v);
    headers.host = '127.0.0.1:8080';
    const req: SignedRequest = { method: 'POST', path: '/awsapi', query: '', headers, body: v4.body };
    const auth = parseV4Authorization(headers.authorization);
    assert.ok(auth);
    assert.equal(auth.region, 'nimbostack');
    assert.equal(auth.service, 'ec2');
    assert.equal(v4Signature(req, auth, headers['x-amz-date'], SECRET), auth.signature);
    const tampered = { ...req, body: v4.body.replace('web', 'Web') };
    assert.notEqual(v4Signature(tampered, auth, headers['x-amz-date'], SECRET), auth.signature);
  });

  test('Version 2 (HmacSHA256)', () => {
    const { v2 } = out();
    assert.equal(v2.SignatureMethod, 'HmacSHA256');
    const params = Object.entries(v2).map(([k, v]) => [k, String(v)] as [string, string]);
    const req: SignedRequest = {
      method: 'POST',
      path: '/awsapi',
      query: '',
      headers: { host: '127.0.0.1:8080' },
      body: '',
    };
    assert.equal(v2Signature(req, params, SECRET, 'HmacSHA256'), v2.Signature);
    assert.notEqual(
      v2Signature({ ...req, headers: { host: '127.0.0.1:8081' } }, params, SECRET, 'HmacSHA256'),
      v2.Signature,
    );
  });
});
