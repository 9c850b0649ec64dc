/**
 * A GUI theme's JSON configuration, checked as upstream's JsonConfigValidator does — it must be a
 * JSON object; keys upstream's UI does not know are dropped — and stricter where a value ends up
 * in the browser (docs/ui.md, "What a theme can inject"):
 *
 * - addresses (logo, minilogo, banner, favicon, error pages, plugin and user-card links, docs)
 *   must be http(s) URLs, paths on this server, or data:image URIs: a javascript: or data:text/html
 *   address would run script when a user clicks or the UI follows it;
 * - colours and sizes of `theme` (the variables upstream's Ant Design UI reads) must be one plain
 *   CSS value: no `;`, braces, `url(` or escapes, which would smuggle in rules of their own.
 *
 * What is stored is the configuration with only the known keys, so every client (our UI and
 * upstream's) reads the same checked object.
 */
import { internalError, invalidParameter } from '../errors.ts';

/** Text values upstream's UI reads at the top level. */
const TEXT_KEYS = ['appTitle', 'footer', 'loginFooter'] as const;
/** Addresses at the top level (favicon: upstream's UI applies it; its validator forgot it). */
const URL_KEYS = ['logo', 'minilogo', 'banner', 'favicon', 'docBase', 'apidocs'] as const;

/** The variables of `theme` (upstream's ThemeAttribute list). */
export const THEME_VARIABLES = [
  '@layout-mode',
  '@logo-background-color',
  '@mini-logo-background-color',
  '@navigation-background-color',
  '@project-nav-background-color',
  '@project-nav-text-color',
  '@navigation-text-color',
  '@primary-color',
  '@link-color',
  '@link-hover-color',
  '@loading-color',
  '@processing-color',
  '@success-color',
  '@warning-color',
  '@error-color',
  '@font-size-base',
  '@heading-color',
  '@text-color',
  '@text-color-secondary',
  '@disabled-color',
  '@border-color-base',
  '@border-radius-base',
  '@box-shadow-base',
  '@logo-width',
  '@logo-height',
  '@mini-logo-width',
  '@mini-logo-height',
  '@banner-width',
  '@banner-height',
  '@error-width',
  '@error-height',
] as const;

const ERROR_PAGES = ['403', '404', '500'] as const;
const PLUGIN_KEYS = ['name', 'path', 'icon', 'isExternalLink'] as const;
const USER_CARD_KEYS = ['title', 'icon', 'links'] as const;
const USER_CARD_LINK_KEYS = ['title', 'text', 'link', 'icon'] as const;

/** One CSS value: colour names, #hex, rgb()/hsl() numbers, lengths, shadows. */
const CSS_VALUE = /^[#a-zA-Z0-9 .,%()+-]{1,200}$/;
const IMAGE_DATA = /^data:image\/(png|gif|jpeg|webp|svg\+xml|x-icon|vnd\.microsoft\.icon)[;,]/i;

/** Whether a value may be used as an address in the UI: http(s), this server's paths, data:image. */
export function isSafeUrl(value: string): boolean {
  const v = value.trim();
  if (IMAGE_DATA.test(v)) return true;
  // A scheme is letters, digits, + - . before the first colon that comes before any / ? #.
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(v);
  // Browsers read a backslash as a slash and drop tabs and newlines: such text is no plain path.
  if (!scheme) return ![...v].some((c) => c === '\\' || c.charCodeAt(0) < 0x20);
  return /^https?$/i.test(scheme[1]);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(key: string, v: Json): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw invalidParameter(`jsonconfiguration: ${key} must be a string`);
}

function url(key: string, v: Json): string {
  const s = text(key, v);
  if (!isSafeUrl(s))
    throw invalidParameter(
      `jsonconfiguration: ${key} must be an http(s) URL, a path on this server or a data:image URI`,
    );
  return s;
}

/** Keeps the known keys of an object, each checked by `check`; undefined when none is left. */
function pick<K extends string>(
  v: Json,
  keys: readonly K[],
  check: (key: K, value: Json) => Json,
): Record<string, Json> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, Json> = {};
  for (const k of keys) if (v[k] !== undefined) out[k] = check(k, v[k]);
  return Object.keys(out).length ? out : undefined;
}

/**
 * Parses and checks a configuration; returns the JSON text to store (known keys only), or null
 * for a blank one. Refusals: upstream's 530 for text that is no JSON object, 431 for unsafe values.
 */
export function checkJsonConfiguration(raw: string | undefined): string | null {
  if (raw === undefined || raw.trim() === '') return null;
  let parsed: Json;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw internalError('Specified JSON configuration is not a valid JSON object.');
  }
  if (!isObject(parsed)) throw internalError('Specified JSON configuration is not a valid JSON object.');
  const out: Record<string, Json> = {};
  for (const k of TEXT_KEYS) if (parsed[k] !== undefined) out[k] = text(k, parsed[k]);
  for (const k of URL_KEYS) if (parsed[k] !== undefined) out[k] = url(k, parsed[k]);
  const error = pick(parsed.error, ERROR_PAGES, (k, v) => url(`error.${k}`, v));
  if (error) out.error = error;
  const theme = pick(parsed.theme, THEME_VARIABLES, (k, v) => {
    const s = text(`theme.${k}`, v);
    if (!CSS_VALUE.test(s) || /url\s*\(|expression\s*\(/i.test(s))
      throw invalidParameter(`jsonconfiguration: theme.${k} must be one CSS value such as #1a73e8 or 14px`);
    return s;
  });
  if (theme) out.theme = theme;
  if (Array.isArray(parsed.plugins)) {
    const plugins = parsed.plugins
      .map((p) =>
        pick(p, PLUGIN_KEYS, (k, v) =>
          k === 'isExternalLink'
            ? v === true || v === 'true'
            : k === 'name'
              ? text('plugins.name', v)
              : url(`plugins.${k}`, v),
        ),
      )
      .filter((p) => p !== undefined);
    if (plugins.length) out.plugins = plugins;
  }
  const userCard = pick(parsed.userCard, USER_CARD_KEYS, (k, v) => {
    if (k === 'title') return text('userCard.title', v);
    if (k === 'icon') return url('userCard.icon', v);
    if (!Array.isArray(v)) throw invalidParameter('jsonconfiguration: userCard.links must be a list');
    return v
      .map((l) =>
        pick(l, USER_CARD_LINK_KEYS, (lk, lv) =>
          lk === 'link' || lk === 'icon' ? url(`userCard.links.${lk}`, lv) : text(`userCard.links.${lk}`, lv),
        ),
      )
      .filter((l) => l !== undefined);
  });
  if (userCard) out.userCard = userCard;
  return JSON.stringify(out);
}
