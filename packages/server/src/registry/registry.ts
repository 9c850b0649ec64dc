/** All declared commands, looked up by their exact (case-sensitive) CloudStack name. */
import type { Command } from './command.ts';
import { ResponseFieldIndex, type ResponseFields } from './response-fields.ts';

export class Registry {
  private readonly commands = new Map<string, Command>();
  /** What each response field means, for listApis and the docs. */
  readonly responseFields: ResponseFieldIndex;

  constructor(commands: Command[], responseFields: ResponseFields[] = []) {
    for (const c of commands) {
      if (this.commands.has(c.name)) throw new Error(`command ${c.name} declared twice`);
      void c.catalog; // resolves the catalog entry now: a declaration it does not match fails the start
      this.commands.set(c.name, c);
    }
    this.responseFields = new ResponseFieldIndex(responseFields);
  }

  get(name: string): Command | undefined {
    return this.commands.get(name);
  }

  all(): Command[] {
    return [...this.commands.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
