/**
 * A VPC's network ACL lists (its own, the global ones and the built-in default_allow and
 * default_deny) and the rules of one list in number order: added, edited, deleted, and dragged
 * (or moved up and down) to a new place (moveNetworkAclItem with the rules that end up before and
 * after it). Also the "Replace ACL" form that gives a tier or a private gateway another list.
 *
 * Rows are dragged with the browser's own drag and drop on the table's rows: one list, one axis,
 * no animation to speak of, which is too little to justify a drag library.
 */
import {
  ArrowDownOutlined,
  ArrowUpOutlined,
  DownloadOutlined,
  HolderOutlined,
  PlusOutlined,
} from '@ant-design/icons';
import { Alert, Button, Space, Table, Tag, Tooltip, Typography, theme } from 'antd';
import type { ColumnsType } from 'antd/es/table';
import { type DragEvent, useCallback, useEffect, useRef, useState } from 'react';
import { errorText, listAll, type Params, type Row } from '../api.ts';
import { download, toCsv } from '../csv.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';
import { ActionButton, type Field, FormButton, FormModal, options } from './common.tsx';
import { type Column, ResourceTable } from './ResourceTable.tsx';

const BUILT_IN = ['default_allow', 'default_deny'];
const isBuiltIn = (list: Row) => !list.vpcid && BUILT_IN.includes(String(list.name));
const hasPorts = (v: Row) => v.protocol === 'tcp' || v.protocol === 'udp';
const isIcmp = (v: Row) => v.protocol === 'icmp';

/** The form of a rule; `item` gives the current values when one is edited. */
function ruleFields(item?: Row): Field[] {
  const num = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : Number(v));
  return [
    {
      name: 'number',
      label: 'Rule number',
      type: 'number',
      initial: num(item?.number),
      help: item ? undefined : 'Optional: after the last rule when left empty',
    },
    {
      name: 'action',
      label: 'Action',
      type: 'select',
      required: true,
      initial: item?.action ?? 'Allow',
      options: ['Allow', 'Deny'].map((v) => ({ value: v, label: v })),
    },
    {
      name: 'traffictype',
      label: 'Traffic type',
      type: 'select',
      required: true,
      initial: item?.traffictype ?? 'Ingress',
      options: ['Ingress', 'Egress'].map((v) => ({ value: v, label: v })),
    },
    {
      name: 'protocol',
      label: 'Protocol',
      type: 'select',
      required: true,
      initial: item?.protocol ?? 'tcp',
      options: ['tcp', 'udp', 'icmp', 'all'].map((v) => ({ value: v, label: v.toUpperCase() })),
    },
    {
      name: 'startport',
      label: 'Start port',
      type: 'number',
      required: true,
      initial: num(item?.startport),
      visible: hasPorts,
    },
    {
      name: 'endport',
      label: 'End port (optional)',
      type: 'number',
      initial: num(item?.endport),
      visible: hasPorts,
    },
    {
      name: 'icmptype',
      label: 'ICMP type',
      type: 'number',
      initial: num(item?.icmptype) ?? -1,
      help: '-1 for any',
      visible: isIcmp,
    },
    {
      name: 'icmpcode',
      label: 'ICMP code',
      type: 'number',
      initial: num(item?.icmpcode) ?? -1,
      help: '-1 for any',
      visible: isIcmp,
    },
    {
      name: 'cidrlist',
      label: 'CIDR list',
      initial: item?.cidrlist ?? '0.0.0.0/0',
      help: 'Comma-separated: sources for Ingress, destinations for Egress',
    },
    { name: 'reason', label: 'Reason (optional)', initial: item?.reason },
  ];
}

/** What the form gives, without the fields its protocol hides (their stale values). */
function ruleParams(v: Params): Params {
  const { startport, endport, icmptype, icmpcode, ...rest } = v;
  if (v.protocol === 'tcp' || v.protocol === 'udp') return { ...rest, startport, endport };
  if (v.protocol === 'icmp') return { ...rest, icmptype, icmpcode };
  return rest;
}

function portsOf(r: Row): string {
  if (r.protocol === 'icmp') return `type ${r.icmptype ?? -1}, code ${r.icmpcode ?? -1}`;
  if (r.startport === undefined) return r.protocol === 'tcp' || r.protocol === 'udp' ? 'all' : '';
  return r.endport !== undefined && r.endport !== r.startport ? `${r.startport}-${r.endport}` : r.startport;
}

export function VpcAcls({ vpc, onChange }: { vpc: Row; onChange(): void }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [shown, setShown] = useState<Row>();
  const bump = () => {
    setReload((n) => n + 1);
    onChange();
  };
  const columns: Column[] = [
    {
      key: 'name',
      title: 'Name',
      render: (l) => (
        <Space>
          {l.name}
          {isBuiltIn(l) && <Tag>built-in</Tag>}
          {!l.vpcid && !isBuiltIn(l) && <Tag>global</Tag>}
        </Space>
      ),
    },
    { key: 'description', title: 'Description' },
    { key: 'vpcname', title: 'VPC', hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <ResourceTable
        title="Network ACL lists"
        command="listNetworkACLLists"
        listKey="networkacllist"
        exportName={`acl-lists-${vpc.name}`}
        params={{ vpcid: vpc.id, listall: true }}
        columns={columns}
        reload={reload}
        toolbar={
          session.can('createNetworkACLList') && (
            <FormButton
              command="createNetworkACLList"
              label="Create ACL list"
              icon={<PlusOutlined />}
              fields={[
                { name: 'name', label: 'Name', required: true },
                { name: 'description', label: 'Description' },
              ]}
              onSubmit={async (v) => {
                const made = await run(`Create ACL list ${v.name}`, 'createNetworkACLList', {
                  ...v,
                  vpcid: vpc.id,
                });
                if (made?.networkacllist) setShown(made.networkacllist as Row);
                bump();
              }}
            />
          )
        }
        actions={(l) => (
          <Space wrap>
            <ActionButton label="Rules" onClick={() => setShown(l)} />
            {l.vpcid && session.can('deleteNetworkACLList') && (
              <ActionButton
                danger
                label="Delete"
                confirm={`Delete ACL list ${l.name} and its rules? A list a tier or gateway uses cannot be deleted.`}
                onClick={async () => {
                  if (await run(`Delete ACL list ${l.name}`, 'deleteNetworkACLList', { id: l.id })) {
                    if (shown?.id === l.id) setShown(undefined);
                    bump();
                  }
                }}
              />
            )}
          </Space>
        )}
      />
      {shown && <AclRules key={String(shown.id)} list={shown} />}
    </Space>
  );
}

/** The rules of one list in evaluation order; editable unless built-in (or global, for non-root). */
function AclRules({ list }: { list: Row }) {
  const session = useSession();
  const { run } = useActions();
  const { token } = theme.useToken();
  const [rows, setRows] = useState<Row[]>();
  const [error, setError] = useState<string>();
  const [editing, setEditing] = useState<Row>();
  // A ref, not state: the dragover right after dragstart must see it before any re-render.
  const dragged = useRef<string>(undefined);
  const [over, setOver] = useState<string>();
  const editable = !isBuiltIn(list) && (Boolean(list.vpcid) || session.isRootAdmin);

  const load = useCallback(() => {
    listAll('listNetworkACLs', 'networkacl', { aclid: list.id, listall: true })
      .then((items) => {
        setRows([...items].sort((a, b) => Number(a.number) - Number(b.number)));
        setError(undefined);
      })
      .catch((e) => setError(errorText(e)));
  }, [list.id]);
  useEffect(load, [load]);

  /** Puts the rule at `from` at `to` and tells the server its new neighbours. */
  const move = async (from: number, to: number) => {
    if (!rows || from < 0 || to < 0 || to >= rows.length || from === to) return;
    const order = [...rows];
    const [moved] = order.splice(from, 1);
    order.splice(to, 0, moved);
    setRows(order);
    await run(`Move rule ${moved.number} of ${list.name}`, 'moveNetworkAclItem', {
      id: moved.id,
      previousaclruleid: order[to - 1]?.id,
      nextaclruleid: order[to + 1]?.id,
    });
    // The server renumbers the rules after it: show its numbers (or the old order if refused).
    load();
  };

  /** The dragged rule goes where `target` is. */
  const drop = (target: string) => {
    const from = rows?.findIndex((r) => r.id === dragged.current) ?? -1;
    dragged.current = undefined;
    setOver(undefined);
    return move(from, rows?.findIndex((r) => r.id === target) ?? -1);
  };

  const columns: ColumnsType<Row> = [
    ...(editable
      ? [
          {
            key: 'drag',
            width: 32,
            render: () => (
              <Tooltip title="Drag to reorder">
                <HolderOutlined style={{ cursor: 'grab' }} aria-hidden />
              </Tooltip>
            ),
          },
        ]
      : []),
    { key: 'number', title: '#', dataIndex: 'number' },
    {
      key: 'action',
      title: 'Action',
      render: (_, r) => <Tag color={r.action === 'Allow' ? 'green' : 'red'}>{r.action}</Tag>,
    },
    { key: 'traffictype', title: 'Traffic', dataIndex: 'traffictype' },
    { key: 'protocol', title: 'Protocol', render: (_, r) => String(r.protocol ?? '').toUpperCase() },
    { key: 'ports', title: 'Ports or ICMP', render: (_, r) => portsOf(r) },
    { key: 'cidrlist', title: 'CIDRs', dataIndex: 'cidrlist' },
    { key: 'reason', title: 'Reason', dataIndex: 'reason' },
    ...(editable
      ? [
          {
            key: 'actions',
            title: 'Actions',
            render: (_: unknown, r: Row, index: number) => (
              <Space>
                {/* The keyboard's way to reorder, next to dragging. */}
                {session.can('moveNetworkAclItem') && (
                  <>
                    <Tooltip title="Move up">
                      <Button
                        size="small"
                        aria-label={`Move rule ${r.number} up`}
                        icon={<ArrowUpOutlined />}
                        disabled={index === 0}
                        onClick={() => move(index, index - 1)}
                      />
                    </Tooltip>
                    <Tooltip title="Move down">
                      <Button
                        size="small"
                        aria-label={`Move rule ${r.number} down`}
                        icon={<ArrowDownOutlined />}
                        disabled={index === (rows?.length ?? 0) - 1}
                        onClick={() => move(index, index + 1)}
                      />
                    </Tooltip>
                  </>
                )}
                {session.can('updateNetworkACLItem') && (
                  <ActionButton label="Edit" onClick={() => setEditing(r)} />
                )}
                {session.can('deleteNetworkACL') && (
                  <ActionButton
                    danger
                    label="Delete"
                    confirm={`Delete rule ${r.number}?`}
                    onClick={async () => {
                      if (
                        await run(`Delete rule ${r.number} of ${list.name}`, 'deleteNetworkACL', { id: r.id })
                      )
                        load();
                    }}
                  />
                )}
              </Space>
            ),
          },
        ]
      : []),
  ];

  return (
    <section aria-label={`Rules of ${list.name}`}>
      <Space wrap style={{ marginBottom: 8 }}>
        <Typography.Title level={5} style={{ margin: 0 }}>
          Rules of {list.name}
        </Typography.Title>
        {editable && session.can('createNetworkACL') && (
          <FormButton
            command="createNetworkACL"
            label="Add rule"
            icon={<PlusOutlined />}
            fields={ruleFields()}
            onSubmit={async (v) => {
              if (
                await run(`Add rule to ${list.name}`, 'createNetworkACL', {
                  ...ruleParams(v),
                  aclid: list.id,
                })
              )
                load();
            }}
          />
        )}
        <Button
          icon={<DownloadOutlined />}
          disabled={!rows?.length}
          onClick={() => exportRules(list, rows ?? [])}
        >
          Export CSV
        </Button>
      </Space>
      {!editable && (
        <Alert
          type="info"
          showIcon
          style={{ marginBottom: 8 }}
          title={
            isBuiltIn(list)
              ? 'A built-in list: its rules cannot be changed.'
              : 'A global list: only root administrators change its rules.'
          }
        />
      )}
      {error && <Alert type="error" showIcon title={error} />}
      <Table<Row>
        size="small"
        rowKey="id"
        loading={rows === undefined && !error}
        dataSource={rows ?? []}
        columns={columns}
        pagination={false}
        scroll={{ x: 'max-content' }}
        onRow={(r) =>
          editable
            ? {
                draggable: true,
                'aria-roledescription': 'draggable rule',
                onDragStart: (e: DragEvent) => {
                  e.dataTransfer.effectAllowed = 'move';
                  e.dataTransfer.setData('text/plain', String(r.id));
                  dragged.current = String(r.id);
                },
                onDragOver: (e: DragEvent) => {
                  if (!dragged.current) return;
                  e.preventDefault();
                  setOver(String(r.id));
                },
                onDragEnd: () => {
                  dragged.current = undefined;
                  setOver(undefined);
                },
                onDrop: (e: DragEvent) => {
                  e.preventDefault();
                  void drop(String(r.id));
                },
                style:
                  over === r.id && dragged.current !== r.id
                    ? { outline: `2px dashed ${token.colorPrimary}`, outlineOffset: -2 }
                    : undefined,
              }
            : {}
        }
      />
      {editing && (
        <FormModal
          command="updateNetworkACLItem"
          open
          title={`Edit rule ${editing.number} of ${list.name}`}
          fields={ruleFields(editing)}
          onClose={() => setEditing(undefined)}
          onSubmit={async (v) => {
            // partialupgrade=false: the form holds the whole rule, so what it leaves out is cleared.
            const params = { ...ruleParams(v), id: editing.id, partialupgrade: false };
            if (await run(`Edit rule ${editing.number} of ${list.name}`, 'updateNetworkACLItem', params))
              load();
          }}
        />
      )}
    </section>
  );
}

/** The rules in their order, as the table holds them (it loads every rule of the list). */
function exportRules(list: Row, rows: Row[]): void {
  download(
    `acl-${list.name}.csv`,
    toCsv(
      ['Number', 'Action', 'Traffic', 'Protocol', 'Ports or ICMP', 'CIDRs', 'Reason', 'ID'],
      rows.map((r) => [
        r.number,
        r.action,
        r.traffictype,
        r.protocol,
        portsOf(r),
        r.cidrlist,
        r.reason,
        r.id,
      ]),
    ),
  );
}

/** A button and form that give a tier (networkid) or a private gateway (gatewayid) another list. */
export function ReplaceAcl(props: {
  vpc: Row;
  target: { networkid: string } | { gatewayid: string };
  name: string;
  current?: string;
  onDone(): void;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button size="small" onClick={() => setOpen(true)}>
        Replace ACL
      </Button>
      {open && <ReplaceAclForm {...props} onClose={() => setOpen(false)} />}
    </>
  );
}

function ReplaceAclForm(props: {
  vpc: Row;
  target: { networkid: string } | { gatewayid: string };
  name: string;
  current?: string;
  onDone(): void;
  onClose(): void;
}) {
  const { run } = useActions();
  const lists = useList('listNetworkACLLists', 'networkacllist', { vpcid: props.vpc.id, listall: true });
  return (
    <FormModal
      command="replaceNetworkACLList"
      open
      title={`ACL list of ${props.name}`}
      fields={[
        {
          name: 'aclid',
          label: 'ACL list',
          type: 'select',
          required: true,
          initial: props.current,
          options: options(lists),
        },
      ]}
      onClose={props.onClose}
      onSubmit={async (v) => {
        const list = lists.find((l) => l.id === v.aclid);
        await run(`Use ACL ${list?.name ?? v.aclid} on ${props.name}`, 'replaceNetworkACLList', {
          aclid: v.aclid,
          ...props.target,
        });
        props.onDone();
      }}
    />
  );
}
