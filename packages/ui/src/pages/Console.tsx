/**
 * A VM's console in its own browser tab: noVNC's RFB client on a WebSocket to the management
 * server's console proxy. Opened as /client/console/<vm id>: with `?token=` (createConsoleEndpoint's
 * url, or the legacy /client/console redirect) it connects with that one-time token and needs no
 * login; without one it asks createConsoleEndpoint with the browser's session.
 */
import RFB from '@novnc/novnc';
import { Alert, Button, Space, Tag, Typography } from 'antd';
import { useEffect, useRef, useState } from 'react';
import { api, errorText } from '../api.ts';

type Status = 'connecting' | 'connected' | 'disconnected' | 'failed';

interface Endpoint {
  success: boolean;
  details?: string;
  websocket?: { token: string; path: string; extra?: string };
}

const COLOURS: Record<Status, string> = {
  connecting: 'processing',
  connected: 'success',
  disconnected: 'default',
  failed: 'error',
};

async function socketUrl(vmId: string, token: string | undefined): Promise<string> {
  let ws: { token: string; path: string; extra?: string };
  if (token) ws = { token, path: 'client/websockify' };
  else {
    const e = (await api<{ consoleendpoint: Endpoint }>('createConsoleEndpoint', { virtualmachineid: vmId }))
      .consoleendpoint;
    if (!e.success || !e.websocket) throw new Error(e.details ?? 'The console is not available');
    ws = e.websocket;
  }
  // The page is served by the same server as the proxy, so its own origin reaches it, also behind
  // a reverse proxy that rewrote the host the API saw.
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  const extra = ws.extra ? `&extra=${encodeURIComponent(ws.extra)}` : '';
  return `${scheme}://${window.location.host}/${ws.path}?token=${encodeURIComponent(ws.token)}${extra}`;
}

export default function ConsolePage({ vmId, token }: { vmId: string; token?: string }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfb = useRef<RFB>(undefined);
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
      .then((url) => {
        if (gone || !screen.current) return;
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
          <Button
            size="small"
            disabled={status !== 'connected'}
            onClick={() => rfb.current?.sendCtrlAltDel()}
          >
            Ctrl+Alt+Del
          </Button>
          {status === 'connected' ? (
            <Button size="small" onClick={() => rfb.current?.disconnect()}>
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
