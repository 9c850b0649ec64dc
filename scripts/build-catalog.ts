/**
 * Regenerates packages/server/src/registry/catalog.json from the CloudStack API catalog in
 * ../shared/cloudstack-api/apis.json. The server reads the slim copy at run time (default roles,
 * async flags, envelope names, and the upstream annotation text that listApis serves), so a
 * clone runs without ../shared. Run it when the upstream catalog is refreshed: `npm run catalog`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface UpstreamParam {
  name: string;
  type: string;
  required: boolean;
  description?: string;
  length?: number;
  collectionType?: string;
  since?: string;
}
interface UpstreamCommand {
  name: string;
  description: string;
  isasync: boolean;
  since: string | null;
  roles: string[];
  responseName: string;
  responseShape: 'list' | 'object' | 'inline';
  responseObjectName: string | null;
  params: UpstreamParam[];
  response?: { name: string; type: string; description?: string }[];
  sourceClasses?: string[];
}

const source =
  process.argv[2] ?? fileURLToPath(new URL('../../shared/cloudstack-api/apis.json', import.meta.url));
const target = fileURLToPath(new URL('../packages/server/src/registry/catalog.json', import.meta.url));
const upstream = JSON.parse(readFileSync(source, 'utf8')) as UpstreamCommand[];

/** The Java class name that queryAsyncJobResult reports as `cmd` (the user-package class when there are two). */
function javaClass(paths: string[] = []): string | undefined {
  const chosen = paths.find((p) => p.includes('/command/user/')) ?? paths[0];
  const m = chosen?.match(/src\/main\/java\/(.+)\.java$/);
  return m ? m[1].replaceAll('/', '.') : undefined;
}

const slim = upstream.map((c) => ({
  name: c.name,
  description: c.description,
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
    description: p.description ?? '',
    ...(p.length ? { length: p.length } : {}),
    ...(p.collectionType ? { collectionType: p.collectionType } : {}),
    ...(p.since ? { since: p.since } : {}),
  })),
  response: (c.response ?? []).map((f) => ({ name: f.name, type: f.type, description: f.description ?? '' })),
}));
writeFileSync(target, JSON.stringify(slim));
console.log(`wrote ${slim.length} commands to ${target}`);
