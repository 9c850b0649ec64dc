/**
 * The password policy (upstream's password.policy.* settings), checked wherever a password is
 * chosen: createAccount, createUser and updateUser (a user's own change or an admin's reset).
 * Each setting can be overridden per domain; the user's domain decides.
 */
import type { App } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import type { SettingDef } from '../settings/settings.ts';
import {
  PASSWORD_ALLOW_USERNAME,
  PASSWORD_MIN_DIGITS,
  PASSWORD_MIN_LENGTH,
  PASSWORD_MIN_LOWERCASE,
  PASSWORD_MIN_SPECIAL,
  PASSWORD_MIN_UPPERCASE,
  PASSWORD_REGEX,
  passwordRegex,
} from './sign-in-settings.ts';

/** Throws a 431 naming the first rule `password` breaks for a user of `domainId`. */
export function checkPasswordPolicy(
  app: Pick<App, 'settings'>,
  password: string,
  username: string,
  domainId: number,
): void {
  const at = <T>(def: SettingDef<T>): T => app.settings.at(def, 'domain', domainId);
  let special = 0;
  let upper = 0;
  let lower = 0;
  let digits = 0;
  // Counted by Unicode class, as upstream's Character.isUpperCase etc.: "É" is an upper-case letter.
  for (const ch of password) {
    if (/\p{Lu}/u.test(ch)) upper++;
    else if (/\p{Ll}/u.test(ch)) lower++;
    else if (/\p{Nd}/u.test(ch)) digits++;
    else if (!/[\p{L}\p{N}]/u.test(ch)) special++;
  }
  const rules: [number, number, string][] = [
    [special, at(PASSWORD_MIN_SPECIAL), 'special characters'],
    [upper, at(PASSWORD_MIN_UPPERCASE), 'upper case letters'],
    [lower, at(PASSWORD_MIN_LOWERCASE), 'lower case letters'],
    [digits, at(PASSWORD_MIN_DIGITS), 'digits'],
    [[...password].length, at(PASSWORD_MIN_LENGTH), 'characters'],
  ];
  for (const [have, min, what] of rules) {
    if (min > 0 && have < min)
      throw invalidParameter(`User password should contain at least [${min}] ${what}.`);
  }
  if (!at(PASSWORD_ALLOW_USERNAME) && password.toLowerCase().includes(username.toLowerCase()))
    throw invalidParameter('User password should not contain their username.');
  if (!passwordRegex(at(PASSWORD_REGEX)).test(password))
    throw invalidParameter('User password does not match with password policy regex.');
}
