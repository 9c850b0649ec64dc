import { Typography } from 'antd';
import { AffinityGroupTable } from '../components/affinity.tsx';

export function AffinityGroups() {
  return (
    <div>
      <Typography.Title level={3}>Affinity groups</Typography.Title>
      <Typography.Paragraph type="secondary">
        Anti-affinity places a group's instances on different hosts; affinity keeps them on one host. Choose
        groups when deploying an instance, or change them on a stopped instance's page.
      </Typography.Paragraph>
      <AffinityGroupTable />
    </div>
  );
}
