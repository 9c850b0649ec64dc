import { useEffect, useState } from 'react';
import { listAll, type Params, type Row } from './api.ts';
import { useSession } from './session.tsx';

/** Every item of a small list (zones, offerings, ...) for pickers; empty when not allowed. */
export function useList(command: string, key: string, params: Params = {}, reload = 0): Row[] {
  const { can } = useSession();
  const [rows, setRows] = useState<Row[]>([]);
  const paramsKey = JSON.stringify(params);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger
  useEffect(() => {
    if (!can(command)) return;
    let cancelled = false;
    listAll(command, key, JSON.parse(paramsKey), 2000)
      .then((r) => !cancelled && setRows(r))
      .catch(() => !cancelled && setRows([]));
    return () => {
      cancelled = true;
    };
  }, [can, command, key, paramsKey, reload]);
  return rows;
}
