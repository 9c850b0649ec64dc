/**
 * GUI themes (createGuiTheme, listGuiThemes, updateGuiTheme, removeGuiTheme) against a server
 * process, on every database (NIMBOSTACK_TEST_DBS; the common-name match is SQL LIKE): upstream's refusals and texts, what is stored of a JSON configuration, which theme each
 * question answers (account, domain with recursivedomains, common name with wildcards, default),
 * what a call without credentials may see, and that a refused call writes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer, testDatabases } from './harness.ts';

type Theme = Record<string, unknown> & { id: string; name: string };
type ThemeList = { count?: number; guiThemes?: Theme[] };

let server: TestServer;
let admin: CloudStackClient;

/** A call with no credentials at all, as the UI makes before sign-in. */
async function anonymous(params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(server.api, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ command: 'listGuiThemes', response: 'json', ...params }),
  });
  return { status: res.status, body: await res.json() };
}

async function refused(client: CloudStackClient, command: string, params: Record<string, string>) {
  return client.request(command, params).then(
    () => assert.fail(`${command} ${JSON.stringify(params)} was accepted`),
    (e: { errorcode: number; errortext: string }) => e,
  );
}

async function themeCount(): Promise<number> {
  const r = await admin.request<ThemeList>('listGuiThemes', { showremoved: 'true' });
  return r.count ?? 0;
}

for (const kind of testDatabases())
  describe(`GUI themes on ${kind}`, () => {
    before(async () => {
      server = await startServer({ db: kind });
      admin = server.admin;
    });
    after(async () => {
      await server?.stop();
    });

    let user: CloudStackClient;
    let other: CloudStackClient;
    let userAccountId: string;
    let subdomainId: string;
    let parentId: string;
    const themes: Record<string, Theme> = {};

    before(async () => {
      const parent = await admin.request<{ domain: { id: string } }>('createDomain', { name: 'brands' });
      parentId = parent.domain.id;
      const sub = await admin.request<{ domain: { id: string } }>('createDomain', {
        name: 'retail',
        parentdomainid: parentId,
      });
      subdomainId = sub.domain.id;
      const u = await createAccountAndLogin(server, {
        name: 'shopper',
        domainid: subdomainId,
        domainPath: '/brands/retail',
      });
      user = u.client;
      userAccountId = String(u.account.id);
      other = (await createAccountAndLogin(server, { name: 'outsider' })).client;
    });

    test('the default theme: its JSON is checked and stored with the known keys only; one default only', async () => {
      const json = {
        appTitle: 'Acme Cloud',
        logo: '/branding/acme.svg',
        favicon: 'data:image/png;base64,iVBORw0KGgo=',
        theme: { '@primary-color': '#c2185b', '@unknown-variable': 'red' },
        tracking: 'dropped',
      };
      const r = await admin.request<{ guiThemes: Theme }>('createGuiTheme', {
        name: 'acme-default',
        description: 'for everyone',
        jsonconfiguration: JSON.stringify(json),
      });
      const t = r.guiThemes;
      themes.default = t;
      assert.equal(t.name, 'acme-default');
      assert.equal(t.ispublic, true);
      assert.equal(t.recursivedomains, false);
      assert.equal(t.commonnames, undefined);
      assert.ok(typeof t.created === 'string');
      assert.deepEqual(JSON.parse(String(t.jsonconfiguration)), {
        appTitle: 'Acme Cloud',
        logo: '/branding/acme.svg',
        favicon: 'data:image/png;base64,iVBORw0KGgo=',
        theme: { '@primary-color': '#c2185b' },
      });
      const before = await themeCount();
      const e = await refused(admin, 'createGuiTheme', { name: 'second-default', css: 'body{}' });
      assert.equal(e.errorcode, 530);
      assert.match(
        e.errortext,
        /^Only one default GUI theme is allowed\. Remove the current default theme acme-default/,
      );
      assert.equal(await themeCount(), before);
    });

    test('refusals: upstream’s texts and codes, and nothing is written', async () => {
      const before = await themeCount();
      const cases: [Record<string, string>, number, RegExp][] = [
        [
          { name: 'x', commonnames: 'a.example' },
          530,
          /^Either the `css` or `jsonConfiguration` parameter must be informed\.$/,
        ],
        [
          { name: 'x', commonnames: 'a.example', jsonconfiguration: '{nope' },
          530,
          /^Specified JSON configuration is not a valid JSON object\.$/,
        ],
        [{ name: 'x', commonnames: 'a.example', jsonconfiguration: '[1,2]' }, 530, /not a valid JSON object/],
        [
          { name: 'x', css: 'a{}', domainids: '6b1c9e1a-0000-4000-8000-000000000000' },
          530,
          /^The Domain ID 6b1c9e1a-0000-4000-8000-000000000000 does not exist\. Verify the informed IDs and try again\.$/,
        ],
        [
          { name: 'x', css: 'a{}', accountids: `${userAccountId},not-an-account` },
          530,
          /^The Account ID not-an-account does not exist/,
        ],
        [{ name: 'x', css: 'a{}', commonnames: 'evil.example/<script>' }, 431, /Invalid common name/],
        [
          {
            name: 'x',
            commonnames: 'a.example',
            jsonconfiguration: JSON.stringify({ logo: 'javascript:alert(1)' }),
          },
          431,
          /logo must be an http\(s\) URL, a path on this server or a data:image URI/,
        ],
        [
          {
            name: 'x',
            commonnames: 'a.example',
            jsonconfiguration: JSON.stringify({ banner: 'java\tscript:alert(1)' }),
          },
          431,
          /banner must be/,
        ],
        [
          {
            name: 'x',
            commonnames: 'a.example',
            jsonconfiguration: JSON.stringify({ theme: { '@primary-color': 'red; } body { display: none' } }),
          },
          431,
          /theme\.@primary-color must be one CSS value/,
        ],
        [
          {
            name: 'x',
            commonnames: 'a.example',
            jsonconfiguration: JSON.stringify({ theme: { '@primary-color': 'url(https://evil.example/x)' } }),
          },
          431,
          /must be one CSS value/,
        ],
      ];
      for (const [params, code, text] of cases) {
        const e = await refused(admin, 'createGuiTheme', params);
        assert.equal(e.errorcode, code, `${JSON.stringify(params)}: ${e.errortext}`);
        assert.match(e.errortext, text);
      }
      // Only root admins manage themes.
      const denied = await refused(user, 'createGuiTheme', { name: 'mine', css: 'a{}' });
      assert.equal(denied.errorcode, 432);
      assert.equal(await themeCount(), before);
    });

    test('themes for common names, a domain tree and an account; a domain or account theme is private', async () => {
      themes.portal = (
        await admin.request<{ guiThemes: Theme }>('createGuiTheme', {
          name: 'portal',
          commonnames: '*.portal.example, portal.example',
          css: '.login-page { background: #102030; }',
        })
      ).guiThemes;
      assert.equal(themes.portal.commonnames, '*.portal.example,portal.example');
      assert.equal(themes.portal.ispublic, true);
      themes.brands = (
        await admin.request<{ guiThemes: Theme }>('createGuiTheme', {
          name: 'brands',
          domainids: parentId,
          recursivedomains: 'true',
          ispublic: 'true',
          jsonconfiguration: JSON.stringify({ appTitle: 'Brands' }),
        })
      ).guiThemes;
      assert.equal(themes.brands.ispublic, false, 'a domain theme is never public');
      assert.equal(themes.brands.recursivedomains, true);
      themes.shopper = (
        await admin.request<{ guiThemes: Theme }>('createGuiTheme', {
          name: 'shopper',
          accountids: userAccountId,
          jsonconfiguration: JSON.stringify({ appTitle: 'Shopper' }),
        })
      ).guiThemes;
      assert.equal(themes.shopper.accountids, userAccountId);
      assert.equal(themes.shopper.ispublic, false);
    });

    test('before sign-in: the common name (wildcards) and the default theme, never a private one', async () => {
      const names = (b: any) => ((b.listguithemesresponse.guiThemes ?? []) as Theme[]).map((t) => t.name);
      let r = await anonymous({ commonname: 'eu.portal.example' });
      assert.equal(r.status, 200);
      assert.deepEqual(names(r.body), ['portal']);
      r = await anonymous({ commonname: 'portal.example' });
      assert.deepEqual(names(r.body), ['portal']);
      r = await anonymous({ commonname: 'portal.example.evil.test' });
      assert.deepEqual(names(r.body), []);
      r = await anonymous({ listonlydefaulttheme: 'true' });
      assert.deepEqual(names(r.body), ['acme-default']);
      // Every other question is ignored without credentials: the account's theme does not leak.
      r = await anonymous({ accountid: userAccountId });
      assert.ok(!names(r.body).includes('shopper') && !names(r.body).includes('brands'));
      // A public theme turned private is no longer shown before sign-in.
      await admin.request('updateGuiTheme', { id: themes.portal.id, ispublic: 'false' });
      r = await anonymous({ commonname: 'eu.portal.example' });
      assert.deepEqual(names(r.body), []);
      await admin.request('updateGuiTheme', { id: themes.portal.id, ispublic: 'true' });
    });

    test('signed in: the account’s theme, the domain’s (recursive), and no other account’s', async () => {
      const names = (r: ThemeList) => (r.guiThemes ?? []).map((t) => t.name);
      assert.deepEqual(names(await user.request<ThemeList>('listGuiThemes', { accountid: userAccountId })), [
        'shopper',
      ]);
      assert.deepEqual(names(await user.request<ThemeList>('listGuiThemes', { domainid: subdomainId })), [
        'brands',
      ]);
      const all = names(await user.request<ThemeList>('listGuiThemes', { listall: 'true' }));
      assert.deepEqual(all.sort(), ['acme-default', 'brands', 'portal', 'shopper']);
      const outsider = names(await other.request<ThemeList>('listGuiThemes', {}));
      assert.deepEqual(outsider.sort(), ['acme-default', 'portal']);
      assert.deepEqual(
        names(await other.request<ThemeList>('listGuiThemes', { accountid: userAccountId })),
        [],
      );
      // Not recursive: the subdomain no longer gets the parent's theme.
      await admin.request('updateGuiTheme', { id: themes.brands.id, recursivedomains: 'false' });
      assert.deepEqual(names(await user.request<ThemeList>('listGuiThemes', { domainid: subdomainId })), []);
      assert.deepEqual(names(await admin.request<ThemeList>('listGuiThemes', { domainid: parentId })), [
        'brands',
      ]);
    });

    test('update replaces a scope list given and keeps the others; remove answers success and hides the theme', async () => {
      const updated = (
        await admin.request<{ guiThemes: Theme }>('updateGuiTheme', {
          id: themes.shopper.id,
          accountids: '',
          commonnames: 'shop.example',
          description: 'now for a host name',
        })
      ).guiThemes;
      assert.equal(updated.accountids, undefined);
      assert.equal(updated.commonnames, 'shop.example');
      assert.equal(updated.description, 'now for a host name');
      assert.equal(JSON.parse(String(updated.jsonconfiguration)).appTitle, 'Shopper');
      // Clearing everything of the only other theme would make a second default theme.
      const e = await refused(admin, 'updateGuiTheme', { id: themes.shopper.id, commonnames: '' });
      assert.equal(e.errorcode, 530);
      assert.match(e.errortext, /Only one default GUI theme is allowed/);

      const removed = await admin.request<Record<string, unknown>>('removeGuiTheme', {
        id: themes.shopper.id,
      });
      assert.deepEqual(removed, { success: true });
      assert.equal(
        (await admin.request<ThemeList>('listGuiThemes', { id: themes.shopper.id })).count ?? 0,
        0,
      );
      const shown = await admin.request<ThemeList>('listGuiThemes', {
        id: themes.shopper.id,
        showremoved: 'true',
      });
      assert.ok(typeof shown.guiThemes?.[0].removed === 'string');
      const again = await refused(admin, 'removeGuiTheme', { id: themes.shopper.id });
      assert.equal(again.errortext, 'Unable to find a GUI theme with the specified ID.');
      const unknown = await refused(admin, 'removeGuiTheme', { id: '6b1c9e1a-0000-4000-8000-000000000001' });
      assert.equal(unknown.errorcode, 431);

      const events = await admin.request<{ event?: { type: string }[] }>('listEvents', {
        listall: 'true',
        keyword: 'GUI theme',
      });
      const types = new Set((events.event ?? []).map((x) => x.type));
      for (const t of ['GUI.THEME.CREATE', 'GUI.THEME.UPDATE', 'GUI.THEME.REMOVE'])
        assert.ok(types.has(t), t);
    });
  });
