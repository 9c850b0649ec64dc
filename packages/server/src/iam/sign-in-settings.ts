/**
 * Settings of sign-in security: failed-login lockout, the session-key check, password policies
 * and two-factor authentication. Names and defaults are upstream's (but for the 2FA issuer name
 * and the session-key locations, see docs/security.md), so an operator's CloudStack knowledge and
 * scripts calling updateConfiguration carry over. The defaults are permissive, as upstream's are:
 * a fresh install behaves as before until an operator tightens them.
 */
import { invalidParameter } from '../errors.ts';
import { defineSetting } from '../settings/settings.ts';

export const INCORRECT_LOGIN_ATTEMPTS = defineSetting({
  name: 'incorrect.login.attempts.allowed',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 5,
  min: 0,
  description:
    'Consecutive failed logins after which a user is disabled (0: never). Root admin accounts are exempt.',
});

export const SESSION_KEY_CHECK_LOCATIONS = defineSetting<string>({
  name: 'api.sessionkey.check.locations',
  category: 'Advanced',
  type: 'String',
  defaultValue: 'CookieOrParameter',
  options: ['CookieOrParameter', 'ParameterOnly', 'CookieAndParameter'],
  description:
    'Where session calls must present the session key: the sessionkey cookie or parameter, the parameter, or both. State-changing calls always need the parameter.',
});

const domainScoped = { category: 'Advanced', scopes: ['domain' as const] };

export const PASSWORD_MIN_LENGTH = defineSetting({
  ...domainScoped,
  name: 'password.policy.minimum.length',
  type: 'Integer',
  defaultValue: 0,
  min: 0,
  description: 'Fewest characters a new password may have (0: no minimum).',
});

export const PASSWORD_MIN_SPECIAL = defineSetting({
  ...domainScoped,
  name: 'password.policy.minimum.special.characters',
  type: 'Integer',
  defaultValue: 0,
  min: 0,
  description: 'Fewest characters that are neither letters nor digits a new password must hold.',
});

export const PASSWORD_MIN_UPPERCASE = defineSetting({
  ...domainScoped,
  name: 'password.policy.minimum.uppercase.letters',
  type: 'Integer',
  defaultValue: 0,
  min: 0,
  description: 'Fewest upper-case letters a new password must hold.',
});

export const PASSWORD_MIN_LOWERCASE = defineSetting({
  ...domainScoped,
  name: 'password.policy.minimum.lowercase.letters',
  type: 'Integer',
  defaultValue: 0,
  min: 0,
  description: 'Fewest lower-case letters a new password must hold.',
});

export const PASSWORD_MIN_DIGITS = defineSetting({
  ...domainScoped,
  name: 'password.policy.minimum.digits',
  type: 'Integer',
  defaultValue: 0,
  min: 0,
  description: 'Fewest digits a new password must hold.',
});

export const PASSWORD_ALLOW_USERNAME = defineSetting({
  ...domainScoped,
  name: 'password.policy.allowPasswordToContainUsername',
  type: 'Boolean',
  defaultValue: true,
  description: 'Whether a password may contain its user name (compared without regard to case).',
});

export const PASSWORD_REGEX = defineSetting<string>({
  ...domainScoped,
  name: 'password.policy.regex',
  type: 'String',
  defaultValue: '.+',
  validate: (value) => {
    passwordRegex(value);
  },
  description: 'A regular expression the whole of a new password must match.',
});

/** The policy regex, anchored at both ends as upstream's whole-string match is; 431 if malformed. */
export function passwordRegex(source: string): RegExp {
  try {
    return new RegExp(`^(?:${source})$`, 'su');
  } catch {
    throw invalidParameter(`password.policy.regex is not a valid regular expression: ${source}`);
  }
}

export const ENABLE_USER_2FA = defineSetting({
  ...domainScoped,
  name: 'enable.user.2fa',
  type: 'Boolean',
  defaultValue: false,
  description: 'Let users set up two-factor authentication.',
});

export const MANDATE_USER_2FA = defineSetting({
  ...domainScoped,
  name: 'mandate.user.2fa',
  type: 'Boolean',
  defaultValue: false,
  description:
    'With enable.user.2fa, require every user to set up and pass two-factor authentication before any other call.',
});

export const USER_2FA_ISSUER = defineSetting<string>({
  ...domainScoped,
  name: 'user.2fa.issuer',
  type: 'String',
  defaultValue: 'Nimbostack',
  description: 'Issuer name shown by authenticator apps for the TOTP secret.',
});

export const USER_2FA_DEFAULT_PROVIDER = defineSetting<string>({
  ...domainScoped,
  name: 'user.2fa.default.provider',
  type: 'String',
  defaultValue: 'totp',
  options: ['totp', 'staticpin'],
  description: 'The two-factor provider used when setupUserTwoFactorAuthentication names none.',
});
