/**
 * A VM's console in its own browser tab: noVNC's RFB client on a WebSocket to the management
 * server's console proxy. Opened as /client/console/<vm id>: with `?token=` (createConsoleEndpoint's
 * url, or the legacy /client/console redirect) it connects with that one-time token and needs no
 * login; without one it asks createConsoleEndpoint with the browser's session. A container (LXC)
 * has a terminal instead of a display (`terminal=1` in the URL the server gives): the same socket
 * then carries its tty's bytes, shown by xterm.js.
 */
import RFB from '@novnc/novnc';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { Alert, Button, Space, Tag, Typography } from 'antd';
import { useEffect, useRef, useState } from 'react';
import { api, errorText } from '../api.ts';

type Status = 'connecting' | 'connected' | 'disconnected' | 'failed';

interface Endpoint {
  success: boolean;
  details?: string;
  url?: string;
  websocket?: { token: string; path: string; extra?: string };
}

const COLOURS: Record<Status, string> = {
  connecting: 'processing',
  connected: 'success',
  disconnected: 'default',
  failed: 'error',
};

const terminalIn = (url: string) => new URL(url, window.location.href).searchParams.get('terminal') === '1';

/** The console socket's URL, and whether the VM's console is a terminal (a container's). */
async function socketUrl(
  vmId: string,
  token: string | undefined,
): Promise<{ url: string; terminal?: boolean }> {
  let ws: { token: string; path: string; extra?: string };
  let terminal: boolean | undefined;
  if (token) ws = { token, path: 'client/websockify' };
  else {
    const e = (await api<{ consoleendpoint: Endpoint }>('createConsoleEndpoint', { virtualmachineid: vmId }))
      .consoleendpoint;
    if (!e.success || !e.websocket) throw new Error(e.details ?? 'The console is not available');
    ws = e.websocket;
    terminal = e.url ? terminalIn(e.url) : undefined;
  }
  // The page is served by the same server as the proxy, so its own origin reaches it, also behind
  // a reverse proxy that rewrote the host the API saw.
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  const extra = ws.extra ? `&extra=${encodeURIComponent(ws.extra)}` : '';
  return {
    url: `${scheme}://${window.location.host}/${ws.path}?token=${encodeURIComponent(ws.token)}${extra}`,
    terminal,
  };
}

/**
 * A container's terminal on the console socket: its bytes to xterm.js, keys back. Enter is sent
 * once connected, so a login prompt printed before the viewer came shows again. Returns the
 * function that closes both.
 */
function openTerminal(
  el: HTMLElement,
  url: string,
  on: { status(s: Status): void; detail(d: string): void },
): () => void {
  const term = new Terminal({ cursorBlink: true, fontSize: 15, theme: { background: '#000' } });
  term.open(el);
  const ws = new WebSocket(url, ['binary']);
  ws.binaryType = 'arraybuffer';
  let opened = false;
  ws.addEventListener('open', () => {
    opened = true;
    on.status('connected');
    ws.send(new TextEncoder().encode('\r'));
    term.focus();
  });
  ws.addEventListener('message', (e) => term.write(new Uint8Array(e.data as ArrayBuffer)));
  ws.addEventListener('close', (e) => {
    if (e.reason) on.detail(e.reason);
    on.status(opened ? 'disconnected' : 'failed');
  });
  const keys = term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(d));
  });
  return () => {
    keys.dispose();
    ws.close();
    term.dispose();
  };
}

export default function ConsolePage({ vmId, token }: { vmId: string; token?: string }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfb = useRef<RFB>(undefined);
  /** Closes a terminal session (containers); noVNC's sessions close through `rfb`. */
  const closeTerminal = useRef<() => void>(undefined);
  // Read before the URL loses its query (the token is used once and removed from it).
  const terminalAtOpen = useRef(new URLSearchParams(window.location.search).get('terminal') === '1');
  const [terminal, setTerminal] = useState(terminalAtOpen.current);
  const [status, setStatus] = useState<Status>('connecting');
  const [detail, setDetail] = useState<string>();
  const [title, setTitle] = useState(vmId);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let gone = false;
    setStatus('connecting');
    setDetail(undefined);
    // A token works once: the first attempt uses the one in the URL, later ones ask for a new one.
    const given = attempt === 0 ? token : undefined;
    if (given) window.history.replaceState(null, '', `/client/console/${vmId}`);
    socketUrl(vmId, given)
      .then(({ url, terminal: isTerminal }) => {
        if (gone || !screen.current) return;
        if (isTerminal !== undefined) setTerminal(isTerminal);
        if (isTerminal ?? terminalAtOpen.current) {
          closeTerminal.current = openTerminal(screen.current, url, { status: setStatus, detail: setDetail });
          return;
        }
        // Our own socket, so that the server's close reason (expired token, VM stopped) can be shown.
        const ws = new WebSocket(url, ['binary']);
        ws.binaryType = 'arraybuffer';
        ws.addEventListener('close', (e) => {
          if (e.reason) setDetail(e.reason);
        });
        const client = new RFB(screen.current, ws, { shared: true });
        client.scaleViewport = true;
        client.background = '#000';
        client.addEventListener('connect', () => setStatus('connected'));
        client.addEventListener('disconnect', () =>
          setStatus((s) => (s === 'connecting' ? 'failed' : 'disconnected')),
        );
        client.addEventListener('desktopname', (e) => {
          const name = (e as CustomEvent<{ name: string }>).detail.name;
          setTitle(name);
          document.title = `${name} – console`;
        });
        rfb.current = client;
      })
      .catch((e) => {
        if (gone) return;
        setStatus('failed');
        setDetail(errorText(e));
      });
    return () => {
      gone = true;
      rfb.current?.disconnect();
      rfb.current = undefined;
      closeTerminal.current?.();
      closeTerminal.current = undefined;
    };
  }, [vmId, token, attempt]);

  return (
    <div
      className="console-page"
      style={{ display: 'flex', flexDirection: 'column', height: '100vh', background: '#000' }}
    >
      <div
        style={{ padding: '6px 12px', background: '#141414', display: 'flex', alignItems: 'center', gap: 12 }}
      >
        <Typography.Text strong style={{ color: '#fff' }}>
          {title}
        </Typography.Text>
        <Tag color={COLOURS[status]} data-testid="console-status">
          {status}
        </Tag>
        <Space style={{ marginLeft: 'auto' }}>
          {!terminal && (
            <Button
              size="small"
              disabled={status !== 'connected'}
              onClick={() => rfb.current?.sendCtrlAltDel()}
            >
              Ctrl+Alt+Del
            </Button>
          )}
          {status === 'connected' ? (
            <Button
              size="small"
              onClick={() => {
                rfb.current?.disconnect();
                closeTerminal.current?.();
              }}
            >
              Disconnect
            </Button>
          ) : (
            <Button size="small" disabled={status === 'connecting'} onClick={() => setAttempt((n) => n + 1)}>
              Reconnect
            </Button>
          )}
        </Space>
      </div>
      {detail && status !== 'connected' && (
        <Alert type={status === 'failed' ? 'error' : 'info'} showIcon message={detail} banner />
      )}
      <div ref={screen} data-testid="console-screen" style={{ flex: 1, overflow: 'hidden' }} />
    </div>
  );
}
