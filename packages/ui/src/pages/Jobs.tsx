/**
 * Jobs started from this browser as they run (with their outcome and error text), and the
 * account's recent async jobs from listAsyncJobs.
 */
import { Button, List, Space, Tag, Typography } from 'antd';
import { date, StateTag } from '../components/common.tsx';
import { ResourceTable } from '../components/ResourceTable.tsx';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';

const STATUS = ['Pending', 'Succeeded', 'Failed'];

export function JobsList() {
  const { jobs, clear } = useActions();
  const session = useSession();
  return (
    <div>
      <Space style={{ justifyContent: 'space-between', width: '100%' }}>
        <Typography.Title level={4} style={{ margin: 0 }}>
          This session
        </Typography.Title>
        <Button size="small" onClick={clear}>
          Clear finished
        </Button>
      </Space>
      <List
        size="small"
        dataSource={jobs}
        locale={{ emptyText: 'No actions yet' }}
        renderItem={(j) => (
          <List.Item data-testid="job">
            <List.Item.Meta
              title={
                <Space>
                  {j.label}
                  <Tag
                    color={
                      j.status === 'running' ? 'processing' : j.status === 'succeeded' ? 'success' : 'error'
                    }
                  >
                    {j.status}
                  </Tag>
                </Space>
              }
              description={
                <>
                  {j.command} · {j.started.toLocaleTimeString()}
                  {j.finished && ` – ${j.finished.toLocaleTimeString()}`}
                  {j.message && <div style={{ color: '#cf1322' }}>{j.message}</div>}
                </>
              }
            />
          </List.Item>
        )}
      />
      {session.can('listAsyncJobs') && (
        <>
          <Typography.Title level={4}>Recent async jobs</Typography.Title>
          <ResourceTable
            title="Async jobs"
            command="listAsyncJobs"
            listKey="asyncjobs"
            rowKey="jobid"
            keyword={false}
            params={{ listall: true }}
            columns={[
              { key: 'created', title: 'Started', value: (r) => date(r.created) },
              {
                key: 'cmd',
                title: 'Command',
                value: (r) =>
                  String(r.cmd ?? '')
                    .split('.')
                    .pop()
                    ?.replace(/Cmd$/, ''),
              },
              {
                key: 'jobstatus',
                title: 'Status',
                value: (r) => STATUS[r.jobstatus] ?? r.jobstatus,
                render: (r) => <StateTag state={STATUS[r.jobstatus]} />,
              },
              { key: 'jobinstancetype', title: 'Object', hidden: true },
              { key: 'account', title: 'Account', hidden: !session.isAdmin },
              { key: 'jobid', title: 'Job ID', hidden: true },
            ]}
          />
        </>
      )}
    </div>
  );
}
