/**
 * Writes docs/commands.md from the command registry: every implemented API command with its
 * description, async flag, default roles and parameters. `npm run docs`; a test fails when the file is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allCommands } from '../packages/server/src/commands.ts';

export function renderCommandDocs(): string {
  const commands = [...allCommands].sort((a, b) => a.name.localeCompare(b.name));
  const lines = [
    '# API commands',
    '',
    'Generated from the command registry by `npm run docs`; do not edit by hand.',
    `Nimbostack implements ${commands.length} CloudStack API commands. Names, parameters and response`,
    'fields follow the CloudStack API; `listApis` on a running server gives the same list for your role.',
    '',
    '| command | what it does | async | default roles | parameters (* required) |',
    '|---|---|---|---|---|',
  ];
  for (const c of commands) {
    const params = Object.entries(c.params)
      .map(([name, spec]) => `${name}${spec.required ? '*' : ''}`)
      .join(', ');
    const what = (c.description ?? '').replaceAll('|', '\\|');
    lines.push(
      `| ${c.name} | ${what} | ${c.isAsync ? 'yes' : ''} | ${c.allowedRoles.join(', ')} | ${params} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = fileURLToPath(new URL('../docs/commands.md', import.meta.url));
  writeFileSync(target, renderCommandDocs());
  console.log(`wrote ${target}`);
}
