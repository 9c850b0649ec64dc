/**
 * Two-factor authentication screens: setting it up (the secret shown once, as text and as the
 * otpauth:// URI authenticator apps take, then a first code to confirm), asking for the code at
 * login, and the profile dialog that shows whether 2FA is on and sets it up or removes it.
 */
import { SafetyOutlined } from '@ant-design/icons';
import { Alert, Button, Form, Input, Modal, Select, Space, Tooltip, Typography } from 'antd';
import { useEffect, useState } from 'react';
import { api, errorText, otpauthUri, type Row } from '../api.ts';

/** The code field and its submit button; `onCode` throws to show an error. */
export function CodeForm(props: { submit: string; onCode(code: string): Promise<void> }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <Form
      layout="vertical"
      name="twofactor"
      onFinish={async (v: { codefor2fa: string }) => {
        setBusy(true);
        setError(undefined);
        try {
          await props.onCode(v.codefor2fa.trim());
        } catch (e) {
          setError(errorText(e));
        } finally {
          setBusy(false);
        }
      }}
    >
      {error && <Alert type="error" showIcon title={error} style={{ marginBottom: 16 }} role="alert" />}
      <Form.Item
        label="Authentication code"
        name="codefor2fa"
        rules={[{ required: true, message: 'Enter the code from your authenticator app (or your PIN)' }]}
      >
        <Input autoComplete="one-time-code" inputMode="numeric" autoFocus />
      </Form.Item>
      <Button type="primary" htmlType="submit" block loading={busy}>
        {props.submit}
      </Button>
    </Form>
  );
}

/**
 * Sets up 2FA for the logged-in user: pick a provider, see the secret once, confirm with a code.
 * The server drops a setup whose first code is wrong, so a failure starts over from the top.
 */
export function TwoFactorSetup(props: { username: string; issuer?: string; onDone(): void }) {
  const [providers, setProviders] = useState<Row[]>([]);
  const [provider, setProvider] = useState('totp');
  const [secret, setSecret] = useState<{ provider: string; code: string }>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    api<{ providers?: Row[] }>('listUserTwoFactorAuthenticatorProviders')
      .then((r) => setProviders(r.providers ?? []))
      .catch((e) => setError(errorText(e)));
  }, []);
  if (!secret)
    return (
      <Space direction="vertical" style={{ width: '100%' }}>
        {error && <Alert type="error" showIcon title={error} role="alert" />}
        <Select
          aria-label="Two-factor provider"
          value={provider}
          onChange={setProvider}
          style={{ width: '100%' }}
          options={providers.map((p) => ({ value: p.name, label: `${p.name}: ${p.description}` }))}
        />
        <Button
          type="primary"
          block
          onClick={async () => {
            setError(undefined);
            try {
              const r = await api<{ setup2fa: Row }>('setupUserTwoFactorAuthentication', { provider });
              setSecret({ provider, code: String(r.setup2fa.secretcode) });
            } catch (e) {
              setError(errorText(e));
            }
          }}
        >
          Set up two-factor authentication
        </Button>
      </Space>
    );
  const uri = otpauthUri(secret.code, props.issuer ?? 'Nimbostack', props.username);
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      {secret.provider === 'totp' ? (
        <>
          <Typography.Text>
            Add this secret to your authenticator app (it is shown only now), then enter the code it shows.
          </Typography.Text>
          <Typography.Text code copyable data-testid="totp-secret">
            {secret.code}
          </Typography.Text>
          <Typography.Text type="secondary" copyable={{ text: uri }} data-testid="otpauth-uri">
            <a href={uri}>{uri}</a>
          </Typography.Text>
        </>
      ) : (
        <>
          <Typography.Text>Your PIN (shown only now): keep it safe and enter it to confirm.</Typography.Text>
          <Typography.Text code copyable data-testid="static-pin">
            {secret.code}
          </Typography.Text>
        </>
      )}
      <CodeForm
        submit="Confirm"
        onCode={async (codefor2fa) => {
          try {
            await api('validateUserTwoFactorAuthenticationCode', { codefor2fa });
          } catch (e) {
            setSecret(undefined);
            throw e;
          }
          props.onDone();
        }}
      />
    </Space>
  );
}

/** The header's two-factor button: whether 2FA is on for this user; set it up or remove it. */
export function TwoFactorButton(props: { userid: string; username: string; issuer?: string }) {
  const [open, setOpen] = useState(false);
  const [enabled, setEnabled] = useState<boolean>();
  const [error, setError] = useState<string>();
  const load = () =>
    api<{ user?: Row[] }>('listUsers', { id: props.userid })
      .then((r) => setEnabled(Boolean(r.user?.[0]?.is2faenabled)))
      .catch((e) => setError(errorText(e)));
  return (
    <>
      <Tooltip title="Two-factor authentication">
        <Button
          aria-label="Two-factor authentication"
          icon={<SafetyOutlined />}
          onClick={() => {
            setOpen(true);
            setError(undefined);
            void load();
          }}
        />
      </Tooltip>
      <Modal
        title="Two-factor authentication"
        open={open}
        footer={null}
        onCancel={() => setOpen(false)}
        destroyOnHidden
      >
        {error && <Alert type="error" showIcon title={error} style={{ marginBottom: 16 }} role="alert" />}
        {enabled === true && (
          <Space direction="vertical" style={{ width: '100%' }}>
            <Typography.Text data-testid="twofactor-status">Two-factor authentication is on.</Typography.Text>
            <Button
              danger
              onClick={async () => {
                try {
                  await api('setupUserTwoFactorAuthentication', { enable: false });
                  setEnabled(false);
                } catch (e) {
                  setError(errorText(e));
                }
              }}
            >
              Remove two-factor authentication
            </Button>
          </Space>
        )}
        {enabled === false && (
          <TwoFactorSetup username={props.username} issuer={props.issuer} onDone={() => void load()} />
        )}
      </Modal>
    </>
  );
}
