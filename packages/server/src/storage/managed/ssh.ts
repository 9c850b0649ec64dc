/**
 * Running a command on a storage server over SSH (the ssh2 library: a maintained pure-JavaScript
 * SSH2 client, no ssh binary or agent needed on the management server). Public-key sign-in only;
 * the server's host key is checked against a pinned SHA-256 fingerprint when one is known, and
 * the fingerprint seen is reported so the first connection can pin it.
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';

// ssh2 is CommonJS: its named exports are read from the default one.
const { Client, utils } = ssh2;

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** The private key (OpenSSH or PEM), in the clear only in memory. */
  privateKey: string;
  /** The host key's fingerprint as ssh-keygen -l prints it (SHA256:…); any key when absent. */
  hostKey?: string;
}

export interface SshResult {
  stdout: string;
  stderr: string;
  code: number;
  /** The fingerprint of the host key the server presented. */
  hostKey: string;
}

/** Why an SSH command could not run (not a command that ran and failed). */
export class SshError extends Error {}

export const fingerprint = (key: Buffer) =>
  `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;

/** Undefined when the key parses (a passphrase-less private key), else why not. */
export function privateKeyProblem(key: string): string | undefined {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) return parsed.message;
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one?.isPrivateKey()) return 'it is not a private key';
  return undefined;
}

/** Runs `command` through the user's shell on the target; resolves with its exit status and output. */
export function sshRun(target: SshTarget, command: string, timeoutMs = 60_000): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let seen = '';
    let settled = false;
    const finish = (err: Error | undefined, result?: SshResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(
      () => finish(new SshError(`no answer from ${target.host}:${target.port} within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    conn.on('error', (err: Error & { level?: string; code?: string }) => {
      const why =
        err.level === 'client-authentication'
          ? `the key was refused for user ${target.user}`
          : seen && target.hostKey && seen !== target.hostKey
            ? `its host key ${seen} is not the pinned ${target.hostKey}`
            : err.code === 'ECONNREFUSED'
              ? 'connection refused'
              : err.message;
      finish(new SshError(`SSH to ${target.user}@${target.host}:${target.port} failed: ${why}`));
    });
    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return finish(new SshError(`SSH exec on ${target.host} failed: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('close', (code: number | null) =>
          finish(undefined, {
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(errOut).toString('utf8'),
            code: code ?? -1,
            hostKey: seen,
          }),
        );
      });
    });
    try {
      conn.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey: target.privateKey,
        readyTimeout: Math.min(timeoutMs, 20_000),
        hostVerifier: (key: Buffer) => {
          seen = fingerprint(key);
          return !target.hostKey || seen === target.hostKey;
        },
      });
    } catch (err) {
      finish(new SshError(`SSH to ${target.host}:${target.port} failed: ${(err as Error).message}`));
    }
  });
}

/** POSIX shell quoting of one word. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
