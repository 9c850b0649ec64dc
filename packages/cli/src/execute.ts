/** Runs one API command: parameters in, response out, blocking on async jobs with a progress line. */
import type { Api } from './apis.ts';
import { missingParams, parseArgs } from './args.ts';
import { UsageError } from './config.ts';
import type { Context } from './context.ts';
import { formatResponse } from './output.ts';

/** Ctrl-C while waiting for a job: the job goes on on the server. */
export class JobInterrupted extends Error {
  constructor(readonly jobid: string) {
    super(
      `interrupted; job ${jobid} is still running. Follow it with: nimbo query asyncjobresult jobid=${jobid}`,
    );
  }
}

export class JobTimedOut extends Error {
  constructor(
    readonly jobid: string,
    seconds: number,
  ) {
    super(
      `job ${jobid} did not end within ${seconds}s and is still running. Follow it with: nimbo query asyncjobresult jobid=${jobid}`,
    );
  }
}

const SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';

/** A spinner with the elapsed time on stderr; nothing when stderr is not a terminal, so logs stay clean. */
function startProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, label: string): () => void {
  if (!stream.isTTY) return () => undefined;
  const started = Date.now();
  let frame = 0;
  const draw = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    stream.write(`\r\x1b[K${SPINNER[frame++ % SPINNER.length]} ${label} ${seconds}s`);
  };
  draw();
  const timer = setInterval(draw, 100);
  return () => {
    clearInterval(timer);
    stream.write('\r\x1b[K');
  };
}

async function waitForJob(ctx: Context, command: string, jobid: string): Promise<Record<string, unknown>> {
  const conn = ctx.connection();
  const interrupted = new AbortController();
  const stopListening = ctx.shared.interrupts(() => interrupted.abort(new JobInterrupted(jobid)));
  const timeout = conn.profile.timeout;
  const timedOut = AbortSignal.timeout(timeout * 1000);
  const signal = AbortSignal.any([interrupted.signal, timedOut]);
  const stopProgress = startProgress(ctx.err, `${command}: waiting for job ${jobid}`);
  try {
    const job = await conn.waitForJob(jobid, () => undefined, signal);
    return (job.jobresult ?? {}) as Record<string, unknown>;
  } catch (e) {
    if (timedOut.aborted && !interrupted.signal.aborted) throw new JobTimedOut(jobid, timeout);
    throw e;
  } finally {
    stopProgress();
    stopListening();
  }
}

/**
 * Sends `command` with the `key=value` words. `api` (from the synced list) gives the required
 * parameters and whether the command is async; without it (`nimbo api` on an unsynced name) a reply
 * holding only a job id is taken as async, as the `cs` client does.
 */
export async function runApi(ctx: Context, command: string, api: Api | undefined, words: string[]) {
  const { params, filter, exclude } = parseArgs(words);
  if (api) {
    const missing = missingParams(api, params);
    if (missing.length)
      throw new UsageError(`missing required parameters for ${api.name}: ${missing.join(', ')}`);
  }
  const format = ctx.outputFormat();
  const name = api?.name ?? command;
  const first = await ctx.connection().request(name, params);
  const jobid = typeof first.jobid === 'string' ? first.jobid : undefined;
  const isAsync = api ? api.isasync : Object.keys(first).every((k) => k === 'jobid' || k === 'id');
  const response = jobid && isAsync && !ctx.flags.async ? await waitForJob(ctx, name, jobid) : first;
  ctx.out.write(formatResponse(response, format, filter, exclude));
}
