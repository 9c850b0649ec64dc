/** nimbo's entry point: one command from the arguments, or the interactive shell without any. */
import { Context, Shared } from './context.ts';
import { runCommandLine } from './program.ts';
import { startShell } from './shell.ts';

// `nimbo list ... | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await runCommandLine(new Context({}, new Shared()), process.argv.slice(2), { startShell });
