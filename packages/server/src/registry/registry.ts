/** All declared commands, looked up by their exact (case-sensitive) CloudStack name. */
import type { Command } from './command.ts';

export class Registry {
  private readonly commands = new Map<string, Command>();

  constructor(commands: Command[]) {
    for (const c of commands) {
      if (this.commands.has(c.name)) throw new Error(`command ${c.name} declared twice`);
      this.commands.set(c.name, c);
    }
  }

  get(name: string): Command | undefined {
    return this.commands.get(name);
  }

  all(): Command[] {
    return [...this.commands.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
