import { useEffect, useState } from 'react';
import { listAll, listPage, type Params, type Row } from './api.ts';
import { useSession } from './session.tsx';

/**
 * The items of a list for pickers and panels: every item (zones, offerings, ...), or just one page
 * when `params` names a pagesize (recent events). Empty when the command is not allowed.
 */
export function useList(command: string, key: string, params: Params = {}, reload = 0): Row[] {
  const { can } = useSession();
  const [rows, setRows] = useState<Row[]>([]);
  const paramsKey = JSON.stringify(params);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger
  useEffect(() => {
    if (!can(command)) return;
    let cancelled = false;
    const p = JSON.parse(paramsKey) as Params;
    const load = p.pagesize ? listPage(command, key, p).then((r) => r.items) : listAll(command, key, p, 2000);
    load.then((r) => !cancelled && setRows(r)).catch(() => !cancelled && setRows([]));
    return () => {
      cancelled = true;
    };
  }, [can, command, key, paramsKey, reload]);
  return rows;
}
