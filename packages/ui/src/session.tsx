import { createContext, useContext } from 'react';
import type { LoginInfo } from './api.ts';

export interface Session {
  info: LoginInfo;
  /** Commands this user may call (listApis): menus and actions are gated by them. */
  apis: Set<string>;
  can(command: string): boolean;
  /** The server's description of a command's parameter (listApis), for form field tooltips. */
  describe(command: string, param: string): string | undefined;
  /** Root admin (account type 1): sees infrastructure and global settings. */
  isRootAdmin: boolean;
  isAdmin: boolean;
  logout(): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a logged-in app');
  return s;
}

const STORAGE = 'nimbostack.login';

export function savedLogin(): LoginInfo | undefined {
  const raw = sessionStorage.getItem(STORAGE);
  return raw ? (JSON.parse(raw) as LoginInfo) : undefined;
}

export function saveLogin(info: LoginInfo | undefined): void {
  if (info) sessionStorage.setItem(STORAGE, JSON.stringify(info));
  else sessionStorage.removeItem(STORAGE);
}
