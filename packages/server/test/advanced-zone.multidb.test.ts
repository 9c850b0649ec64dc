/**
 * Public ranges under real concurrency on every database (NIMBOSTACK_TEST_DBS): parallel
 * createVlanIpRange calls in one zone are serialised by the zone row, so overlapping ones are
 * refused, the others all land on the zone's one Public network, and every address gets its row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer, testDatabases } from './harness.ts';

for (const kind of testDatabases()) {
  describe(`public IP ranges on ${kind}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer({ db: kind });
    });
    after(() => server.stop());

    test('parallel creations: overlaps refused, one Public network, one address row per IP', async () => {
      const admin = server.admin;
      const zone = (
        await admin.request<any>('createZone', {
          name: 'par',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        })
      ).zone;
      // Six calls for three distinct ranges (each on its own VLAN): each range is asked for twice.
      const results = await Promise.allSettled(
        [0, 1, 2, 3, 4, 5].map((i) =>
          admin.request<any>('createVlanIpRange', {
            zoneid: zone.id,
            forvirtualnetwork: true,
            vlan: String(100 + (i % 3)),
            gateway: `10.${i % 3}.0.1`,
            netmask: '255.255.255.0',
            startip: `10.${i % 3}.0.10`,
            endip: `10.${i % 3}.0.59`,
          }),
        ),
      );
      const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.vlan] : []));
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      assert.equal(made.length, 3, refused.map((e) => e.message).join('\n'));
      assert.ok(refused.every((e) => e.errorcode === 431 && /overlaps/.test(e.message)));
      assert.equal(new Set(made.map((r) => r.networkid)).size, 1);
      assert.deepEqual(made.map((r) => r.vlan).sort(), ['vlan://100', 'vlan://101', 'vlan://102']);
      const listed = await admin.request<any>('listVlanIpRanges', {
        zoneid: zone.id,
        forvirtualnetwork: true,
      });
      assert.equal(listed.count, 3);
      // Every address is there once: 50 per range, Free, acquirable.
      const free = await admin.request<any>('listPublicIpAddresses', {
        zoneid: zone.id,
        allocatedonly: false,
        pagesize: 500,
        page: 1,
      });
      assert.equal(free.count, 150);
      for (const r of made) await admin.request('deleteVlanIpRange', { id: r.id });
      assert.equal((await admin.request<any>('listVlanIpRanges', { zoneid: zone.id })).count, undefined);
    });
  });
}
