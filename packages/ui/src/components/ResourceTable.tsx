/**
 * The list behind every screen: server-side paging (page/pagesize, `count` is the total), filters
 * and keyword sent to the API, sorting within the page (CloudStack list commands have no sort
 * parameter), a column chooser, row selection with bulk actions, and CSV export of every match.
 */
import { DownloadOutlined, ReloadOutlined, SettingOutlined } from '@ant-design/icons';
import { Alert, Button, Checkbox, Dropdown, Input, Select, Space, Table, Tooltip } from 'antd';
import type { ColumnsType } from 'antd/es/table';
import { type Key, type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { errorText, listAll, listPage, type Params, type Row } from '../api.ts';
import { download, toCsv } from '../csv.ts';
import { useSession } from '../session.tsx';

export interface Column {
  key: string;
  title: string;
  render?: (row: Row) => ReactNode;
  /** The value exported to CSV and sorted on (defaults to row[key]). */
  value?: (row: Row) => unknown;
  hidden?: boolean;
  width?: number;
}

export interface Filter {
  param: string;
  label: string;
  options: { value: string; label: string }[];
  /** The API parameters for a chosen value (default: param=value). */
  toParams?(value: string): Params;
}

export interface BulkAction {
  label: string;
  danger?: boolean;
  run(rows: Row[]): Promise<void>;
  enabled?(row: Row): boolean;
}

export interface ResourceTableProps {
  title?: string;
  command: string;
  listKey: string;
  columns: Column[];
  params?: Params;
  filters?: Filter[];
  keyword?: boolean;
  rowKey?: string;
  actions?: (row: Row) => ReactNode;
  bulk?: BulkAction[];
  toolbar?: ReactNode;
  /** Change it to reload (after an action elsewhere). */
  reload?: number;
  pageSize?: number;
  exportName?: string;
}

export function ResourceTable(props: ResourceTableProps) {
  const session = useSession();
  const { command, listKey, rowKey = 'id' } = props;
  const [page, setPage] = useState(1);
  const [pageSize, setPageSize] = useState(props.pageSize ?? 20);
  const [filters, setFilters] = useState<Record<string, string | undefined>>({});
  const [keyword, setKeyword] = useState('');
  const [items, setItems] = useState<Row[]>([]);
  const [count, setCount] = useState(0);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string>();
  const [selected, setSelected] = useState<Key[]>([]);
  const [tick, setTick] = useState(0);
  const [shown, setShown] = useState<Set<string>>(
    () => new Set(props.columns.filter((c) => !c.hidden).map((c) => c.key)),
  );
  const allowed = session.can(command);
  const paramsKey = JSON.stringify(props.params ?? {});

  // The filter definitions are rebuilt on every render; only the chosen values should refetch.
  const filterDefs = useRef(props.filters);
  filterDefs.current = props.filters;
  const query = useCallback((): Params => {
    const chosen: Params = {};
    for (const [param, value] of Object.entries(filters)) {
      if (value === undefined) continue;
      const def = filterDefs.current?.find((f) => f.param === param);
      Object.assign(chosen, def?.toParams ? def.toParams(value) : { [param]: value });
    }
    return { ...JSON.parse(paramsKey), ...chosen, keyword: keyword || undefined };
  }, [paramsKey, filters, keyword]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick and props.reload are reload triggers
  useEffect(() => {
    if (!allowed) return;
    let cancelled = false;
    setLoading(true);
    listPage(command, listKey, { ...query(), page, pagesize: pageSize })
      .then((r) => {
        if (cancelled) return;
        setItems(r.items);
        setCount(r.count);
        setError(undefined);
      })
      .catch((e) => !cancelled && setError(errorText(e)))
      .finally(() => !cancelled && setLoading(false));
    return () => {
      cancelled = true;
    };
  }, [allowed, command, listKey, query, page, pageSize, tick, props.reload]);

  const columns: ColumnsType<Row> = useMemo(() => {
    const cols: ColumnsType<Row> = props.columns
      .filter((c) => shown.has(c.key))
      .map((c) => {
        const value = c.value ?? ((r: Row) => r[c.key]);
        return {
          key: c.key,
          title: c.title,
          width: c.width,
          render: (_: unknown, row: Row) => (c.render ? c.render(row) : (value(row) ?? '')) as ReactNode,
          sorter: (a: Row, b: Row) =>
            String(value(a) ?? '').localeCompare(String(value(b) ?? ''), undefined, { numeric: true }),
        };
      });
    if (props.actions)
      cols.push({
        key: '_actions',
        title: 'Actions',
        render: (_: unknown, row: Row) => props.actions?.(row),
      });
    return cols;
  }, [props.columns, props.actions, shown]);

  if (!allowed) {
    return (
      <Alert
        type="info"
        showIcon
        title={`${props.title ?? 'This list'} is not available`}
        description={`The management server does not offer ${command} to your account.`}
      />
    );
  }

  const exportCsv = async () => {
    try {
      const all = await listAll(command, listKey, query());
      const cols = props.columns.filter((c) => shown.has(c.key));
      const rows = all.map((r) => cols.map((c) => (c.value ? c.value(r) : r[c.key])));
      download(
        `${props.exportName ?? listKey}.csv`,
        toCsv(
          cols.map((c) => c.title),
          rows,
        ),
      );
    } catch (e) {
      setError(errorText(e));
    }
  };

  const selectedRows = items.filter((r) => selected.includes(r[rowKey]));
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="small">
      <Space wrap>
        {props.keyword !== false && (
          <Input.Search
            aria-label="Search"
            placeholder="Search"
            allowClear
            onSearch={(v) => {
              setPage(1);
              setKeyword(v);
            }}
            style={{ width: 220 }}
          />
        )}
        {props.filters?.map((f) => (
          <Select
            key={f.param}
            aria-label={f.label}
            placeholder={f.label}
            allowClear
            style={{ minWidth: 150 }}
            options={f.options}
            value={filters[f.param]}
            onChange={(v) => {
              setPage(1);
              setFilters((all) => ({ ...all, [f.param]: v }));
            }}
          />
        ))}
        <Tooltip title="Reload">
          <Button aria-label="Reload" icon={<ReloadOutlined />} onClick={() => setTick((t) => t + 1)} />
        </Tooltip>
        <Dropdown
          trigger={['click']}
          popupRender={() => (
            <div className="column-chooser">
              {props.columns.map((c) => (
                <div key={c.key}>
                  <Checkbox
                    checked={shown.has(c.key)}
                    onChange={(e) =>
                      setShown((s) => {
                        const next = new Set(s);
                        if (e.target.checked) next.add(c.key);
                        else next.delete(c.key);
                        return next;
                      })
                    }
                  >
                    {c.title}
                  </Checkbox>
                </div>
              ))}
            </div>
          )}
        >
          <Button icon={<SettingOutlined />}>Columns</Button>
        </Dropdown>
        <Button icon={<DownloadOutlined />} onClick={exportCsv}>
          Export CSV
        </Button>
        {props.bulk?.map((b) => (
          <Button
            key={b.label}
            danger={b.danger}
            disabled={selectedRows.length === 0 || (b.enabled && !selectedRows.every(b.enabled))}
            onClick={async () => {
              await b.run(selectedRows);
              setSelected([]);
              setTick((t) => t + 1);
            }}
          >
            {b.label} {selectedRows.length > 0 ? `(${selectedRows.length})` : ''}
          </Button>
        ))}
        {props.toolbar}
      </Space>
      {error && <Alert type="error" showIcon title={error} />}
      <Table<Row>
        size="small"
        rowKey={rowKey}
        loading={loading}
        dataSource={items}
        columns={columns}
        scroll={{ x: 'max-content' }}
        rowSelection={props.bulk ? { selectedRowKeys: selected, onChange: setSelected } : undefined}
        pagination={{
          current: page,
          pageSize,
          total: count,
          showSizeChanger: true,
          pageSizeOptions: [20, 50, 100, 500],
          showTotal: (total) => `${total} total`,
          onChange: (p, s) => {
            setPage(s === pageSize ? p : 1);
            setPageSize(s);
          },
        }}
      />
    </Space>
  );
}
