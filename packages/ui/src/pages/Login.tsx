import { Alert, Button, Card, Form, Input, Typography } from 'antd';
import { useState } from 'react';
import { api, errorText, type LoginInfo, login, owesTwoFactorCode } from '../api.ts';
import { CodeForm, TwoFactorSetup } from '../components/TwoFactor.tsx';
import { useGuiTheme } from '../gui-theme.ts';

export function Login(props: { expired: boolean; onLogin(info: LoginInfo): void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  /** A login that still owes its two-factor code (or, when mandated, its 2FA setup). */
  const [pending, setPending] = useState<LoginInfo>();
  const gui = useGuiTheme();
  if (pending)
    return (
      <div className="login-page">
        <Card style={{ width: 420, maxWidth: '100%' }}>
          <Typography.Title level={3}>Two-factor authentication</Typography.Title>
          {pending.providerfor2fa ? (
            <CodeForm
              submit="Verify"
              onCode={async (codefor2fa) => {
                try {
                  await api('validateUserTwoFactorAuthenticationCode', { codefor2fa });
                } catch (e) {
                  // A wrong code ends the session on the server: start again from the password.
                  setPending(undefined);
                  setError(errorText(e));
                  return;
                }
                props.onLogin({ ...pending, is2faverified: 'true' });
              }}
            />
          ) : (
            <>
              <Alert
                type="info"
                showIcon
                title="Your administrator requires two-factor authentication: set it up to continue."
                style={{ marginBottom: 16 }}
              />
              <TwoFactorSetup
                username={pending.username}
                issuer={pending.issuerfor2fa}
                onDone={() => props.onLogin({ ...pending, is2faverified: 'true' })}
              />
            </>
          )}
        </Card>
      </div>
    );
  return (
    <div className="login-page">
      {gui.banner && <img className="login-banner" src={gui.banner} alt="" data-testid="login-banner" />}
      <Card style={{ width: 380, maxWidth: '100%' }}>
        {gui.logo && <img className="login-logo" src={gui.logo} alt="" data-testid="login-logo" />}
        <Typography.Title level={3} data-testid="login-title">
          {gui.appTitle}
        </Typography.Title>
        {props.expired && !error && (
          <Alert
            type="warning"
            showIcon
            title="Your session has ended. Please log in again."
            style={{ marginBottom: 16 }}
          />
        )}
        {error && <Alert type="error" showIcon title={error} style={{ marginBottom: 16 }} role="alert" />}
        <Form
          layout="vertical"
          name="login"
          onFinish={async (v: { username: string; password: string; domain?: string }) => {
            setBusy(true);
            setError(undefined);
            try {
              const info = await login(v.username, v.password, v.domain ?? '/');
              if (owesTwoFactorCode(info)) setPending(info);
              else props.onLogin(info);
            } catch (e) {
              setError(errorText(e));
            } finally {
              setBusy(false);
            }
          }}
        >
          <Form.Item
            label="Username"
            name="username"
            rules={[{ required: true, message: 'Enter your username' }]}
          >
            <Input autoComplete="username" autoFocus />
          </Form.Item>
          <Form.Item
            label="Password"
            name="password"
            rules={[{ required: true, message: 'Enter your password' }]}
          >
            <Input.Password autoComplete="current-password" />
          </Form.Item>
          <Form.Item label="Domain" name="domain" initialValue="/" help="The path of your domain, / for ROOT">
            <Input />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy}>
            Log in
          </Button>
        </Form>
      </Card>
      {gui.loginFooter && (
        <Typography.Text type="secondary" className="login-footer" data-testid="login-footer">
          {gui.loginFooter}
        </Typography.Text>
      )}
    </div>
  );
}
