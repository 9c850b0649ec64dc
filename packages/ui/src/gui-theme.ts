/**
 * The GUI theme (listGuiThemes, docs/ui.md): which one applies is chosen as upstream's UI chooses
 * — the signed-in account's, else its domain's, else the host name's (the common name the browser
 * reached us by), else the default theme — and before sign-in only the last two. What a theme
 * brings is applied defensively, whatever the server stored:
 *
 * - texts (title, footers) are rendered as text, never as HTML;
 * - addresses (logo, banner, favicon) are used only if http(s), a path on this server or a
 *   data:image URI; the Content-Security-Policy then loads images from this server and data:
 *   only, so a theme cannot make browsers fetch from (or report to) another host;
 * - colours become Ant Design tokens and CSS variables (--gui-*) only if they are one plain value;
 * - the style sheet is set as the text of one <style> element (no markup can break out of it), with
 *   @import rules and url() of other hosts removed.
 */
import type { ThemeConfig } from 'antd';
import { useSyncExternalStore } from 'react';
import { api } from './api.ts';

export interface GuiTheme {
  id?: string;
  name?: string;
  css?: string;
  jsonconfiguration?: string;
}

/** What the UI uses of a theme, checked. */
export interface AppliedTheme {
  appTitle: string;
  logo?: string;
  banner?: string;
  favicon?: string;
  footer?: string;
  loginFooter?: string;
  /** Ant Design tokens from the theme's colour variables. */
  tokens: ThemeConfig['token'];
  /** The theme's variables as CSS custom properties (--gui-primary-color...). */
  variables: Record<string, string>;
  css: string;
}

export const DEFAULT_TITLE = 'Nimbostack';

const IMAGE_DATA = /^data:image\/(png|gif|jpeg|webp|svg\+xml|x-icon|vnd\.microsoft\.icon)[;,]/i;
const CSS_VALUE = /^[#a-zA-Z0-9 .,%()+-]{1,200}$/;

/** http(s), a path on this server, or a data:image URI; nothing that could run script. */
export function safeUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (IMAGE_DATA.test(v)) return v;
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(v);
  if (scheme) return /^https?$/i.test(scheme[1]) ? v : undefined;
  return [...v].some((c) => c === '\\' || c.charCodeAt(0) < 0x20) ? undefined : v;
}

function safeCssValue(value: unknown): string | undefined {
  if (typeof value !== 'string' || !CSS_VALUE.test(value) || /url\s*\(|expression\s*\(/i.test(value))
    return undefined;
  return value;
}

/** Drops @import rules and url()s that point at another host (the CSP would block them anyway). */
export function sanitiseCss(css: string): string {
  return css
    .replace(/@import[^;]*;?/gi, '')
    .replace(/url\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (whole, _q, target: string) => {
      const t = target.trim();
      if (IMAGE_DATA.test(t)) return whole;
      if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(t) || t.startsWith('//')) {
        try {
          return new URL(t, window.location.href).origin === window.location.origin ? whole : 'none';
        } catch {
          return 'none';
        }
      }
      return whole;
    });
}

/** Upstream's theme variables this UI maps to Ant Design tokens. */
const TOKENS: Record<string, keyof NonNullable<ThemeConfig['token']>> = {
  '@primary-color': 'colorPrimary',
  '@link-color': 'colorLink',
  '@success-color': 'colorSuccess',
  '@warning-color': 'colorWarning',
  '@error-color': 'colorError',
  '@text-color': 'colorText',
  '@text-color-secondary': 'colorTextSecondary',
  '@border-color-base': 'colorBorder',
};

function text(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

export function applicable(theme: GuiTheme | undefined): AppliedTheme {
  let config: Record<string, unknown> = {};
  try {
    const parsed = theme?.jsonconfiguration ? JSON.parse(theme.jsonconfiguration) : {};
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed;
  } catch {
    // A configuration that is no JSON object brings nothing (the server refuses those anyway).
  }
  const tokens: Record<string, string | number> = {};
  const variables: Record<string, string> = {};
  const vars =
    config.theme && typeof config.theme === 'object' ? (config.theme as Record<string, unknown>) : {};
  for (const [name, raw] of Object.entries(vars)) {
    const value = safeCssValue(raw);
    if (!value || !/^@[a-z-]+$/.test(name)) continue;
    variables[`--gui-${name.slice(1)}`] = value;
    const token = TOKENS[name];
    if (token) tokens[token] = value;
  }
  const fontSize = Number.parseInt(variables['--gui-font-size-base'] ?? '', 10);
  if (fontSize > 0) tokens.fontSize = fontSize;
  const radius = Number.parseInt(variables['--gui-border-radius-base'] ?? '', 10);
  if (radius >= 0) tokens.borderRadius = radius;
  return {
    appTitle: text(config.appTitle) ?? DEFAULT_TITLE,
    logo: safeUrl(config.logo),
    banner: safeUrl(config.banner),
    favicon: safeUrl(config.favicon),
    footer: text(config.footer),
    loginFooter: text(config.loginFooter),
    tokens,
    variables,
    css: theme?.css ? sanitiseCss(theme.css) : '',
  };
}

async function first(params: Record<string, string | boolean>): Promise<GuiTheme | undefined> {
  try {
    const r = await api<{ guiThemes?: GuiTheme[] }>('listGuiThemes', params);
    return r.guiThemes?.[0];
  } catch {
    // No theme is no reason to keep anyone from the portal.
    return undefined;
  }
}

/** Who the theme is for: nobody yet (before sign-in), or the signed-in user's account and domain. */
export interface ThemeSubject {
  accountid?: string;
  domainid?: string;
}

export async function chooseTheme(who: ThemeSubject = {}): Promise<GuiTheme | undefined> {
  return (
    (who.accountid ? await first({ accountid: who.accountid }) : undefined) ??
    (who.domainid ? await first({ domainid: who.domainid }) : undefined) ??
    (await first({ commonname: window.location.hostname })) ??
    (await first({ listonlydefaulttheme: true }))
  );
}

/** Puts the theme on the document: title, favicon, CSS variables and the theme's style sheet. */
function applyToDocument(t: AppliedTheme): void {
  document.title = t.appTitle;
  let icon = document.querySelector<HTMLLinkElement>('link#gui-theme-favicon');
  if (t.favicon) {
    if (!icon) {
      icon = document.createElement('link');
      icon.id = 'gui-theme-favicon';
      icon.rel = 'icon';
      document.head.appendChild(icon);
    }
    icon.href = t.favicon;
  } else icon?.remove();
  const root = document.documentElement;
  for (const name of [...root.style]) if (name.startsWith('--gui-')) root.style.removeProperty(name);
  for (const [name, value] of Object.entries(t.variables)) root.style.setProperty(name, value);
  let style = document.getElementById('gui-theme-css');
  if (!style) {
    style = document.createElement('style');
    style.id = 'gui-theme-css';
    document.head.appendChild(style);
  }
  style.textContent = t.css;
}

// One theme for the whole page, shared by the login page and the shell.
let current: AppliedTheme = applicable(undefined);
let generation = 0;
const listeners = new Set<() => void>();

/** Chooses the theme for `who` again and applies it; a later call wins over a slower earlier one. */
export async function refreshGuiTheme(who: ThemeSubject = {}): Promise<void> {
  const mine = ++generation;
  const theme = await chooseTheme(who);
  if (mine !== generation) return;
  current = applicable(theme);
  applyToDocument(current);
  for (const l of listeners) l();
}

export function useGuiTheme(): AppliedTheme {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => current,
  );
}
