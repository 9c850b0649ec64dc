/**
 * Every action goes through `useActions().run`: synchronous commands answer at once, async ones
 * are tracked as jobs (polled with queryAsyncJobResult) in the jobs drawer, and each outcome is
 * shown with the API's own errortext.
 */
import { App as AntApp } from 'antd';
import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react';
import { api, errorText, type Params, type Row, waitForJob } from './api.ts';

export interface TrackedJob {
  key: number;
  label: string;
  command: string;
  jobid?: string;
  status: 'running' | 'succeeded' | 'failed';
  started: Date;
  finished?: Date;
  message?: string;
}

interface Actions {
  jobs: TrackedJob[];
  /** Runs a command and resolves with its result, or undefined when it failed (already reported). */
  run(label: string, command: string, params?: Params): Promise<Row | undefined>;
  clear(): void;
}

const ActionsContext = createContext<Actions | null>(null);

export function useActions(): Actions {
  const a = useContext(ActionsContext);
  if (!a) throw new Error('useActions outside ActionsProvider');
  return a;
}

let nextKey = 1;

export function ActionsProvider({ children }: { children: ReactNode }) {
  const { notification } = AntApp.useApp();
  const [jobs, setJobs] = useState<TrackedJob[]>([]);
  const update = useCallback((key: number, patch: Partial<TrackedJob>) => {
    setJobs((all) => all.map((j) => (j.key === key ? { ...j, ...patch } : j)));
  }, []);

  const run = useCallback(
    async (label: string, command: string, params: Params = {}): Promise<Row | undefined> => {
      const key = nextKey++;
      setJobs((all) =>
        [{ key, label, command, status: 'running' as const, started: new Date() }, ...all].slice(0, 50),
      );
      try {
        const first = await api(command, params);
        let result: Row = first;
        if (typeof first.jobid === 'string') {
          update(key, { jobid: first.jobid });
          result = await waitForJob(first.jobid, command);
        }
        update(key, { status: 'succeeded', finished: new Date() });
        notification.success({ title: label, description: 'Done', placement: 'bottomRight', duration: 3 });
        return result;
      } catch (e) {
        const message = errorText(e);
        update(key, { status: 'failed', finished: new Date(), message });
        notification.error({
          title: `${label} failed`,
          description: message,
          placement: 'bottomRight',
          duration: 8,
        });
        return undefined;
      }
    },
    [notification, update],
  );

  const value = useMemo(
    () => ({ jobs, run, clear: () => setJobs((all) => all.filter((j) => j.status === 'running')) }),
    [jobs, run],
  );
  return <ActionsContext.Provider value={value}>{children}</ActionsContext.Provider>;
}
