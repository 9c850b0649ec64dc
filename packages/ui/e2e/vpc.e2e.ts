/**
 * The VPC pages in Debian's Chromium against the real management server with an Advanced zone on
 * a simulator host (built through the API: the zone wizard has its own suite): a VPC created on
 * the Networks page and opened from its list, two tiers added from the diagram and drawn with
 * their CIDR, instance count and ACL list, an ACL list with three rules of which one is dragged
 * to the top and another moved down by button (order checked through the API), a tier's list
 * replaced, a list in use refused, a private gateway with a static route, remote-access VPN
 * switched on with a user, and a site-to-site gateway, customer gateway and connection.
 * Screenshots go to test-output/ui/vpc/.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import { waitUntil } from '../../server/test/agents.ts';
import { type AdvancedZone, startAdvancedZone } from '../../server/test/public-ip-zone.ts';
import { choose, confirmPop, launchChromium, outcome, screenshots, settle } from './browser.ts';

const VPC = 'shop';
let zone: AdvancedZone;
let browser: Browser;
let page: Page;
const made: { vpc?: string; web?: string; db?: string; acl?: string; gateway?: string } = {};
type Listing = Record<string, Record<string, string>[] | undefined>;
const { shot } = screenshots('vpc');
const list = (command: string, params: Record<string, unknown> = {}) =>
  zone.admin.request<Listing>(command, { listall: true, ...params });
const recentJobs = async () =>
  ((await list('listAsyncJobs')).asyncjobs ?? []).map((j) => `${j.cmd} ${j.jobstatus} ${j.created}`);
const needs = (t: { skip(msg: string): void }, what: keyof typeof made) => {
  if (!made[what]) t.skip(`no ${what}: an earlier step did not make it`);
  return !made[what];
};

/** Opens a form by its button, waits for its dialog and returns it. */
async function form(root: Page | Locator, button: string, title: string | RegExp): Promise<Locator> {
  // Not exact: a button's icon adds its own label ("plus Create VPC").
  await root.getByRole('button', { name: button }).click();
  await settle(page);
  const dialog = page.getByRole('dialog', { name: title });
  await dialog.waitFor();
  return dialog;
}

async function submit(dialog: Locator, label: string): Promise<void> {
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, label, recentJobs);
  await dialog.waitFor({ state: 'hidden' });
}

async function tab(name: string): Promise<void> {
  await page.getByRole('tab', { name }).click();
  await settle(page);
}

const tier = (name: string) => page.getByRole('group', { name: `Tier ${name}` });
const rules = () => page.getByRole('region', { name: 'Rules of web-acl' }).locator('tr.ant-table-row');

before(async () => {
  zone = await startAdvancedZone({ publicIps: 6, vniRange: '7400-7409', hosts: 1 });
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${zone.server.url}/client/`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
});

after(async () => {
  await browser?.close();
  await zone?.stop();
});

afterEach(async () => {
  await page?.keyboard.press('Escape');
});

test('a VPC is created on the Networks page and its page opened from the list', async () => {
  await page.getByRole('menuitem', { name: 'Networks' }).click();
  const dialog = await form(page, 'Create VPC', 'Create VPC');
  await choose(dialog, 'Zone', 'advzone');
  await choose(dialog, 'VPC offering', 'Default VPC offering');
  await dialog.getByLabel('Name', { exact: true }).fill(VPC);
  await dialog.getByLabel('CIDR', { exact: true }).fill('10.40.0.0/16');
  await submit(dialog, `Create VPC ${VPC}`);
  await page.getByRole('link', { name: VPC, exact: true }).click();
  await page.getByRole('heading', { name: VPC }).waitFor();
  const [vpc] = (await list('listVPCs', { name: VPC })).vpc!;
  assert.equal(vpc.cidr, '10.40.0.0/16');
  assert.match(page.url(), new RegExp(`/client/networks/vpcs/${vpc.id}$`));
  // The router is drawn on top with the VPC's source-NAT address.
  const [snat] = (await list('listPublicIpAddresses', { vpcid: vpc.id, issourcenat: true })).publicipaddress!;
  await page.getByRole('group', { name: 'VPC router' }).getByText(`${snat.ipaddress} (source NAT)`).waitFor();
  made.vpc = vpc.id;
});

test('two tiers are added from the diagram and drawn with CIDR, instance count and ACL', async (t) => {
  if (needs(t, 'vpc')) return;
  for (const [name, third] of [
    ['web', 1],
    ['db', 2],
  ] as const) {
    const dialog = await form(page, 'Add tier', `Add a tier to ${VPC} (10.40.0.0/16)`);
    await dialog.getByLabel('Name', { exact: true }).fill(name);
    await choose(dialog, 'Network offering', 'DefaultIsolatedNetworkOfferingForVpcNetworks');
    await dialog.getByLabel('Gateway', { exact: true }).fill(`10.40.${third}.1`);
    await submit(dialog, `Add tier ${name} to ${VPC}`);
    await tier(name).getByText(`10.40.${third}.0/24`).waitFor();
  }
  const tiers = (await list('listNetworks', { vpcid: made.vpc })).network!;
  const id = (name: string) => tiers.find((n) => n.name === name)?.id;
  assert.deepEqual(tiers.map((n) => n.cidr).sort(), ['10.40.1.0/24', '10.40.2.0/24']);
  // An instance in web: the diagram counts it once it is drawn again.
  await zone.admin.call('deployVirtualMachine', {
    zoneid: zone.zoneid,
    templateid: zone.templateid,
    serviceofferingid: zone.offering,
    networkids: id('web'),
    name: 'web-1',
  });
  await page.reload();
  await tier('web').getByText('1 instance', { exact: true }).waitFor();
  await tier('db').getByText('0 instances', { exact: true }).waitFor();
  await tier('web').getByText('none: nothing comes in').waitFor();
  await shot(page, 'diagram');
  made.web = id('web');
  made.db = id('db');
});

test('an ACL list gets three rules; one dragged to the top moves there on the server', async (t) => {
  if (needs(t, 'vpc')) return;
  await tab('ACL lists');
  // The built-in lists are offered next to the VPC's own, read-only.
  await page
    .getByRole('row')
    .filter({ hasText: 'default_deny' })
    .getByRole('button', { name: 'Rules' })
    .click();
  await page.getByText('A built-in list: its rules cannot be changed.').waitFor();
  const dialog = await form(page, 'Create ACL list', 'Create ACL list');
  await dialog.getByLabel('Name', { exact: true }).fill('web-acl');
  await dialog.getByLabel('Description', { exact: true }).fill('the web tier');
  await submit(dialog, 'Create ACL list web-acl');
  const rulesSection = page.getByRole('region', { name: 'Rules of web-acl' });
  await rulesSection.waitFor();
  for (const [port, action] of [
    ['80', 'Allow'],
    ['443', 'Allow'],
    ['22', 'Deny'],
  ]) {
    const rule = await form(rulesSection, 'Add rule', 'Add rule');
    if (action === 'Deny') await choose(rule, 'Action', 'Deny');
    await rule.getByLabel('Start port', { exact: true }).fill(port);
    await rule.getByLabel('Reason (optional)', { exact: true }).fill(`port ${port}`);
    await submit(rule, 'Add rule to web-acl');
    await rules()
      .filter({ hasText: `port ${port}` })
      .waitFor();
  }
  const acl = (await list('listNetworkACLLists', { vpcid: made.vpc, name: 'web-acl' })).networkacllist![0];
  const order = async () =>
    ((await list('listNetworkACLs', { aclid: acl.id })).networkacl ?? [])
      .sort((a, b) => Number(a.number) - Number(b.number))
      .map((i) => `${i.number} ${i.action} ${i.startport}`);
  assert.deepEqual(await order(), ['1 Allow 80', '2 Allow 443', '3 Deny 22']);
  await shot(page, 'acl-rules');

  await rules()
    .filter({ hasText: 'port 22' })
    .dragTo(rules().filter({ hasText: 'port 80' }));
  await outcome(page, 'Move rule 3 of web-acl', recentJobs);
  // The server puts it first and renumbers the others after it.
  const moved = await order();
  assert.deepEqual(
    moved.map((i) => i.split(' ').slice(1).join(' ')),
    ['Deny 22', 'Allow 80', 'Allow 443'],
  );
  assert.deepEqual(
    moved.map((i) => Number(i.split(' ')[0])),
    [...moved.map((i) => Number(i.split(' ')[0]))].sort((a, b) => a - b),
  );
  await waitUntil(
    async () => (await rules().first().innerText()).includes('port 22') || undefined,
    10_000,
    'the table to show the new order',
  );
  assert.deepEqual(
    (await rules().allInnerTexts()).map((r) => r.match(/port \d+/)?.[0]),
    ['port 22', 'port 80', 'port 443'],
  );

  // The keyboard's way: the 80 rule one place down, behind 443.
  await rules()
    .filter({ hasText: 'port 80' })
    .getByRole('button', { name: /^Move rule \d+ down$/ })
    .click();
  await outcome(page, 'Move rule', recentJobs);
  assert.deepEqual(
    (await order()).map((i) => i.split(' ').slice(1).join(' ')),
    ['Deny 22', 'Allow 443', 'Allow 80'],
  );
  await waitUntil(
    async () => (await rules().last().innerText()).includes('port 80') || undefined,
    10_000,
    'the table to show the new order',
  );

  // An edit keeps the rule's place and changes what it says.
  await rules().filter({ hasText: 'port 443' }).getByRole('button', { name: 'Edit' }).click();
  await settle(page);
  const edit = page.getByRole('dialog', { name: /^Edit rule/ });
  await edit.getByLabel('End port (optional)', { exact: true }).fill('444');
  await submit(edit, 'of web-acl');
  const edited = (await list('listNetworkACLs', { aclid: acl.id })).networkacl!.find(
    (i) => i.startport === '443',
  )!;
  assert.equal(edited.endport, '444');
  assert.equal(edited.reason, 'port 443');
  await rules().filter({ hasText: '443-444' }).waitFor();

  // The export holds the rules in their order.
  const [file] = await Promise.all([
    page.waitForEvent('download'),
    rulesSection.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  const csv = readFileSync(await file.path(), 'utf8').split('\r\n');
  assert.equal(csv[0], '\uFEFFNumber,Action,Traffic,Protocol,Ports or ICMP,CIDRs,Reason,ID');
  assert.deepEqual(
    csv.slice(1, -1).map((line) => line.split(',').slice(1, 7).join(' ')),
    [
      'Deny Ingress tcp 22 0.0.0.0/0 port 22',
      'Allow Ingress tcp 443-444 0.0.0.0/0 port 443',
      'Allow Ingress tcp 80 0.0.0.0/0 port 80',
    ],
  );
  made.acl = acl.id;
});

test("a tier's ACL list is replaced from the diagram; a list in use cannot be deleted", async (t) => {
  if (needs(t, 'acl') || needs(t, 'web')) return;
  await tab('Tiers');
  const dialog = await form(tier('web'), 'Replace ACL', 'ACL list of tier web');
  await choose(dialog, 'ACL list', 'web-acl');
  await submit(dialog, 'Use ACL web-acl on tier web');
  await tier('web').getByText('web-acl', { exact: true }).waitFor();
  const [web] = (await list('listNetworks', { id: made.web })).network!;
  assert.equal(web.aclid, made.acl);
  assert.equal(web.aclname, 'web-acl');
  await shot(page, 'diagram-acl');

  await tab('ACL lists');
  await page.getByRole('row').filter({ hasText: 'web-acl' }).getByRole('button', { name: 'Delete' }).click();
  await confirmPop(page);
  const note = page.locator('.ant-notification-notice').filter({ hasText: 'Delete ACL list web-acl failed' });
  await note.waitFor({ timeout: 30_000 });
  assert.match(await note.innerText(), /still associated with 1 tier/);
  await note.locator('.ant-notification-notice-close').click();
  assert.equal((await list('listNetworkACLLists', { id: made.acl })).networkacllist?.length, 1);
});

test('a private gateway and a static route through it', async (t) => {
  if (needs(t, 'vpc')) return;
  await tab('Private gateways');
  const dialog = await form(page, 'Add private gateway', 'Add private gateway');
  await dialog.getByLabel('VLAN', { exact: true }).fill('42');
  await dialog.getByLabel('IP address', { exact: true }).fill('192.168.100.2');
  await dialog.getByLabel('Gateway', { exact: true }).fill('192.168.100.1');
  await submit(dialog, `Add private gateway 192.168.100.2 to ${VPC}`);
  const [gw] = (await list('listPrivateGateways', { vpcid: made.vpc })).privategateway!;
  assert.equal(gw.ipaddress, '192.168.100.2');
  assert.equal(gw.vlan, 'vlan://42');
  assert.equal(gw.aclname, 'default_deny');
  assert.equal(gw.state, 'Ready');
  await page.getByRole('row').filter({ hasText: '192.168.100.2' }).getByText('Ready').waitFor();

  const route = await form(page, 'Add static route', 'Add static route');
  await route.getByLabel('CIDR', { exact: true }).fill('172.16.0.0/16');
  await choose(route, 'Private gateway', '192.168.100.2');
  await submit(route, 'Add static route 172.16.0.0/16');
  const [sr] = (await list('listStaticRoutes', { vpcid: made.vpc })).staticroute!;
  assert.deepEqual([sr.cidr, sr.nexthop, sr.state], ['172.16.0.0/16', '192.168.100.1', 'Active']);
  await page.getByRole('row').filter({ hasText: '172.16.0.0/16' }).getByText('Active').waitFor();
  await shot(page, 'private-gateways');
  // The diagram draws it on the router.
  await tab('Tiers');
  await page
    .getByRole('group', { name: 'VPC router' })
    .getByText('Private gateway 192.168.100.2/24 on vlan://42 via 192.168.100.1')
    .waitFor();
  await shot(page, 'diagram-gateway');
  made.gateway = gw.id;
});

test('remote-access VPN is switched on with its key shown, and a VPN user is added', async (t) => {
  if (needs(t, 'vpc')) return;
  await tab('VPN');
  await page.getByRole('switch', { name: 'Remote access VPN' }).click();
  await outcome(page, `Enable remote access VPN on ${VPC}`, recentJobs);
  const [vpn] = (await list('listRemoteAccessVpns')).remoteaccessvpn!;
  assert.equal(vpn.state, 'Running');
  assert.ok(vpn.presharedkey.length >= 8);
  assert.equal(await page.getByTestId('vpn-psk').innerText(), vpn.presharedkey);
  assert.equal(
    await page.getByRole('switch', { name: 'Remote access VPN' }).getAttribute('aria-checked'),
    'true',
  );

  const user = await form(page, 'Add VPN user', 'Add VPN user');
  await user.getByLabel('Username', { exact: true }).fill('carol');
  await user.getByLabel('Password', { exact: true }).fill('Passw0rd');
  await submit(user, 'Add VPN user carol');
  await page.getByRole('row').filter({ hasText: 'carol' }).getByText('Active').waitFor();
  const users = (await list('listVpnUsers', { username: 'carol' })).vpnuser!;
  assert.equal(users[0].state, 'Active');
  await shot(page, 'vpn');
});

test('a site-to-site VPN gateway, customer gateway and connection with its state', async (t) => {
  if (needs(t, 'vpc')) return;
  await page.getByRole('button', { name: 'Create VPN gateway' }).click();
  await outcome(page, `Create VPN gateway for ${VPC}`, recentJobs);
  const [gateway] = (await list('listVpnGateways', { vpcid: made.vpc })).vpngateway!;
  await page.getByText('IPsec endpoint').getByText(gateway.publicip).waitFor();

  const customer = await form(page, 'Add customer gateway', 'Add customer gateway');
  await customer.getByLabel('Name', { exact: true }).fill('branch');
  await customer.getByLabel('Gateway address', { exact: true }).fill('198.51.100.7');
  await customer.getByLabel('Networks behind it', { exact: true }).fill('192.168.50.0/24');
  await customer.getByLabel('IPsec pre-shared key', { exact: true }).fill('a-shared-secret');
  await submit(customer, 'Add customer gateway branch');
  await page.getByRole('row').filter({ hasText: '198.51.100.7' }).waitFor();

  // A policy upstream refuses comes back as the server's error, and nothing is made.
  const bad = await form(page, 'Add customer gateway', 'Add customer gateway');
  await bad.getByLabel('Name', { exact: true }).fill('broken');
  await bad.getByLabel('Gateway address', { exact: true }).fill('198.51.100.8');
  await bad.getByLabel('Networks behind it', { exact: true }).fill('192.168.60.0/24');
  await bad.getByLabel('IPsec pre-shared key', { exact: true }).fill('a-shared-secret');
  await bad.getByLabel('IKE policy', { exact: true }).fill('des-sha1;modp1536');
  await bad.getByRole('button', { name: 'OK' }).click();
  const refused = page
    .locator('.ant-notification-notice')
    .filter({ hasText: 'Add customer gateway broken failed' });
  await refused.waitFor({ timeout: 30_000 });
  await refused.locator('.ant-notification-notice-close').click();
  await page.keyboard.press('Escape');
  const customers = (await list('listVpnCustomerGateways')).vpncustomergateway!;
  assert.deepEqual(
    customers.map((c) => c.name),
    ['branch'],
  );

  await settle(page);
  const connection = await form(page, 'Add connection', 'Add connection');
  await choose(connection, 'Customer gateway', 'branch');
  await connection.getByLabel('Passive (only answer the peer)').click();
  await submit(connection, `Connect ${VPC} to branch`);
  const [conn] = (await list('listVpnConnections', { vpcid: made.vpc })).vpnconnection!;
  assert.equal(conn.s2scustomergatewayid, customers[0].id);
  assert.equal(String(conn.passive), 'true');
  // The state shown is the one the router reported, as the API lists it.
  const row = page.getByRole('row').filter({ hasText: '192.168.50.0/24' }).filter({ hasText: 'branch' });
  await row.getByText(conn.state, { exact: true }).waitFor();
  await shot(page, 'site-to-site');
});

test("a user's VPC page: their own VPN and VPN users, no administrator-only form", async () => {
  const alice = await zone.createUser('alice');
  const offering = (await alice.request<Listing>('listVPCOfferings', { name: 'Default VPC offering' }))
    .vpcoffering![0].id;
  const lab = (
    await alice.call<{ vpc: Record<string, string> }>('createVPC', {
      name: 'lab',
      zoneid: zone.zoneid,
      vpcofferingid: offering,
      cidr: '10.50.0.0/16',
    })
  ).vpc;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const user = await context.newPage();
  try {
    await user.goto(`${zone.server.url}/client/`);
    await user.getByLabel('Username').fill('alice');
    await user.getByLabel('Password').fill('secret-pass');
    await user.getByRole('button', { name: 'Log in' }).click();
    await user.getByRole('menuitem', { name: 'Networks' }).click();
    // Only her own VPC is listed.
    await user.getByRole('link', { name: 'lab', exact: true }).click();
    await user.getByRole('heading', { name: 'lab' }).waitFor();
    assert.equal(await user.getByRole('link', { name: VPC, exact: true }).count(), 0);

    await user.getByRole('tab', { name: 'Private gateways' }).click();
    await user.getByRole('button', { name: 'Add static route' }).waitFor();
    assert.equal(await user.getByRole('button', { name: 'Add private gateway' }).count(), 0);

    await user.getByRole('tab', { name: 'VPN' }).click();
    const addUser = async () => {
      await settle(user);
      await user.getByRole('button', { name: 'Add VPN user' }).click();
      await settle(user);
      const dialog = user.getByRole('dialog', { name: 'Add VPN user' });
      await dialog.getByLabel('Username', { exact: true }).fill('dave');
      await dialog.getByLabel('Password', { exact: true }).fill('Passw0rd');
      await dialog.getByRole('button', { name: 'OK' }).click();
    };
    // Without a remote-access VPN of her account the server refuses, and the page says why.
    await addUser();
    const refused = user.locator('.ant-notification-notice').filter({ hasText: 'Add VPN user dave failed' });
    await refused.waitFor({ timeout: 30_000 });
    assert.match(await refused.innerText(), /no remote access VPN/);
    await refused.locator('.ant-notification-notice-close').click();
    assert.equal((await alice.request<Listing>('listVpnUsers')).vpnuser?.length ?? 0, 0);

    await user.getByRole('switch', { name: 'Remote access VPN' }).click();
    await outcome(user, 'Enable remote access VPN on lab', recentJobs);
    await user.getByTestId('vpn-psk').waitFor();
    await addUser();
    await outcome(user, 'Add VPN user dave', recentJobs);
    await user.getByRole('row').filter({ hasText: 'dave' }).waitFor();
    // Hers, not the administrator's: the admin's carol is not on her page.
    assert.equal(await user.getByRole('row').filter({ hasText: 'carol' }).count(), 0);
    const mine = (await alice.request<Listing>('listVpnUsers')).vpnuser ?? [];
    assert.deepEqual(
      mine.map((u) => [u.username, u.account]),
      [['dave', 'alice']],
    );
    await shot(user, 'user-vpn');
    assert.equal((await alice.request<Listing>('listVPCs', { id: lab.id })).vpc?.length, 1);
  } finally {
    await context.close();
  }
});
