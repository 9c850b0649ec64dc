/** Opens a running VM's console (pages/Console.tsx) in a new tab, when the account may. */
import { DesktopOutlined } from '@ant-design/icons';
import { Button } from 'antd';
import type { Row } from '../api.ts';
import { useSession } from '../session.tsx';

export function ConsoleButton({ vm, size }: { vm: Row; size?: 'small' | 'middle' }) {
  const session = useSession();
  if (vm.state !== 'Running' || !session.can('createConsoleEndpoint')) return null;
  return (
    <Button
      size={size}
      icon={<DesktopOutlined />}
      aria-label={`Console of ${vm.displayname || vm.name}`}
      onClick={() => window.open(`/client/console/${vm.id}`, `console-${vm.id}`)}
    >
      Console
    </Button>
  );
}
