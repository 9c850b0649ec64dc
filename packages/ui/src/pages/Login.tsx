import { Alert, Button, Card, Form, Input, Typography } from 'antd';
import { useState } from 'react';
import { errorText, type LoginInfo, login } from '../api.ts';

export function Login(props: { expired: boolean; onLogin(info: LoginInfo): void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <div className="login-page">
      <Card style={{ width: 380, maxWidth: '100%' }}>
        <Typography.Title level={3}>Nimbostack</Typography.Title>
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
              props.onLogin(await login(v.username, v.password, v.domain ?? '/'));
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
    </div>
  );
}
