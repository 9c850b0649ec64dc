/**
 * Regenerates packages/server/src/registry/catalog.json from the CloudStack API catalog in
 * ../shared/cloudstack-api/apis.json. The slim copy holds only wire-protocol facts the server reads
 * at run time (default roles, async flags, envelope and object names, parameter names, types,
 * lengths and entity types, response field names and types) for the commands it implements, so a
 * clone runs without ../shared. No upstream prose: descriptions are ours, in the declarations.
 *
 * The commands are the server's declarations (`allCommands`); names given as arguments are added.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allCommands } from '../packages/server/src/commands.ts';

interface UpstreamParam {
  name: string;
  type: string;
  required: boolean;
  length?: number;
  collectionType?: string;
  since?: string;
  entityType?: string;
}
interface UpstreamCommand {
  name: string;
  isasync: boolean;
  since: string | null;
  roles: string[];
  responseName: string;
  responseShape: 'list' | 'object' | 'inline';
  responseObjectName: string | null;
  params: UpstreamParam[];
  response?: { name: string; type: string }[];
  sourceClasses?: string[];
}

const source = fileURLToPath(new URL('../../shared/cloudstack-api/apis.json', import.meta.url));
const target = fileURLToPath(new URL('../packages/server/src/registry/catalog.json', import.meta.url));
const upstream = JSON.parse(readFileSync(source, 'utf8')) as UpstreamCommand[];

/** The Java class name that queryAsyncJobResult reports as `cmd` (the user-package class when there are two). */
function javaClass(paths: string[] = []): string | undefined {
  const chosen = paths.find((p) => p.includes('/command/user/')) ?? paths[0];
  const m = chosen?.match(/src\/main\/java\/(.+)\.java$/);
  return m ? m[1].replaceAll('/', '.') : undefined;
}

const wanted = new Set(allCommands.map((c) => c.name));
for (const name of process.argv.slice(2)) wanted.add(name);
const known = new Set(upstream.map((c) => c.name));
for (const name of wanted) if (!known.has(name)) throw new Error(`${name} is not a CloudStack API command`);

const slim = upstream
  .filter((c) => wanted.has(c.name))
  .map((c) => ({
    name: c.name,
    isasync: c.isasync,
    since: c.since,
    roles: c.roles,
    responseName: c.responseName,
    responseShape: c.responseShape,
    responseObjectName: c.responseObjectName,
    javaClass: javaClass(c.sourceClasses),
    params: c.params.map((p) => ({
      name: p.name,
      type: p.type,
      required: p.required,
      ...(p.length ? { length: p.length } : {}),
      ...(p.collectionType ? { collectionType: p.collectionType } : {}),
      ...(p.since ? { since: p.since } : {}),
      ...(p.entityType ? { entityType: p.entityType } : {}),
    })),
    response: (c.response ?? []).map((f) => ({ name: f.name, type: f.type })),
  }));
writeFileSync(target, `${JSON.stringify(slim)}\n`);
console.log(`wrote ${slim.length} commands to ${target}`);
