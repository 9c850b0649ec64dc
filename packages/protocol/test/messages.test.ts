/** parseMessage: every frame either validates into a typed message or becomes an error to send back. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PROTOCOL_VERSION, parseMessage, parseResult, validatePayload } from '../src/index.ts';

const startup = {
  type: 'startup',
  protocolVersion: PROTOCOL_VERSION,
  host: 'kvm-1',
  token: 'a-long-token',
  hypervisor: 'Simulator',
  hypervisorVersion: '1.0.0',
  agentVersion: '0.1.0',
  cpuSockets: 1,
  cpuCores: 8,
  cpuMhz: 2400,
  memoryBytes: 8 * 1024 ** 3,
  localStorageBytes: 0,
  privateIp: '10.0.0.5',
  vms: [{ name: 'i-2-3-VM', state: 'PowerOn' }],
};

function error(frame: string | Buffer) {
  const r = parseMessage(frame);
  assert.equal(r.ok, false, `expected ${frame} to be refused`);
  return (r as Extract<typeof r, { ok: false }>).error;
}

describe('parseMessage', () => {
  test('accepts a valid startup, from a string or a buffer', () => {
    for (const frame of [JSON.stringify(startup), Buffer.from(JSON.stringify(startup))]) {
      const r = parseMessage(frame);
      assert.ok(r.ok);
      assert.equal(r.message.type, 'startup');
    }
  });

  test('accepts pings carrying many hosts and answers of both outcomes', () => {
    const ping = {
      type: 'ping',
      hosts: [
        { host: 'a', vms: [] },
        { host: 'b', vms: [{ name: 'v', state: 'PowerOff' }] },
      ],
    };
    assert.ok(parseMessage(JSON.stringify(ping)).ok);
    assert.ok(parseMessage(JSON.stringify({ type: 'answer', id: 'c1', host: 'a', ok: true, result: {} })).ok);
    const failed = parseMessage(
      JSON.stringify({
        type: 'answer',
        id: 'c1',
        host: 'a',
        ok: false,
        error: { code: 'failed', message: 'no' },
      }),
    );
    assert.ok(failed.ok);
  });

  test('validates command payloads by kind and fills defaults', () => {
    const r = parseMessage(
      JSON.stringify({
        type: 'command',
        id: 'c2',
        host: 'a',
        kind: 'stopVm',
        payload: { name: 'v' },
        timeoutMs: 1000,
      }),
    );
    assert.ok(r.ok);
    assert.deepEqual((r.message as { payload: unknown }).payload, { name: 'v', force: false });
  });

  test('frames that are not JSON objects are malformed', () => {
    assert.equal(error('not json').code, 'malformed');
    assert.equal(error('[1,2]').code, 'malformed');
    assert.equal(error('null').code, 'malformed');
    assert.equal(error('"startup"').code, 'malformed');
  });

  test('unknown message types and command kinds are unsupported, keeping id and host', () => {
    assert.equal(error(JSON.stringify({ type: 'hello' })).code, 'unsupported');
    const e = error(
      JSON.stringify({ type: 'command', id: 'c3', host: 'a', kind: 'formatDisk', payload: {}, timeoutMs: 5 }),
    );
    assert.equal(e.code, 'unsupported');
    assert.equal(e.id, 'c3');
    assert.equal(e.host, 'a');
  });

  test('missing or mistyped fields are malformed and say which field', () => {
    const { memoryBytes: _m, ...noMemory } = startup;
    const e = error(JSON.stringify(noMemory));
    assert.equal(e.code, 'malformed');
    assert.match(e.message, /memoryBytes/);
    assert.equal(e.host, 'kvm-1');
    assert.equal(error(JSON.stringify({ ...startup, cpuCores: -1 })).code, 'malformed');
    assert.equal(error(JSON.stringify({ ...startup, host: 'bad host/name' })).code, 'malformed');
    assert.equal(
      error(JSON.stringify({ ...startup, vms: [{ name: 'v', state: 'Exploded' }] })).code,
      'malformed',
    );
    const badPayload = error(
      JSON.stringify({
        type: 'command',
        id: 'c4',
        host: 'a',
        kind: 'startVm',
        payload: { vm: {} },
        timeoutMs: 5,
      }),
    );
    assert.equal(badPayload.code, 'malformed');
    assert.equal(badPayload.id, 'c4');
  });

  test('answers must have a boolean outcome and an error when failed', () => {
    assert.equal(error(JSON.stringify({ type: 'answer', id: 'x', host: 'a', ok: 'yes' })).code, 'malformed');
    assert.equal(error(JSON.stringify({ type: 'answer', id: 'x', host: 'a', ok: false })).code, 'malformed');
  });
});

describe('results and payloads', () => {
  test('parseResult checks a result against its kind', () => {
    assert.ok(parseResult('createVolume', { path: '/p/v', sizeBytes: 10 }).ok);
    const r = parseResult('createVolume', { path: '/p/v' });
    assert.equal(r.ok, false);
  });

  test('validatePayload throws on a payload the agent would refuse', () => {
    assert.throws(() => validatePayload('rebootVm', {}));
    assert.deepEqual(validatePayload('checkHealth', undefined), {});
  });
});
