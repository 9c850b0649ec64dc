/**
 * Deploys an instance step by step: zone → template or ISO → offering (custom sizes) → data disk
 * → network, security groups and affinity groups → SSH key and user data → review, where the request is checked
 * against the account's resource limits before it is sent.
 */
import {
  Alert,
  Button,
  Card,
  Descriptions,
  Form,
  Input,
  InputNumber,
  Radio,
  Select,
  Space,
  Steps,
  Typography,
} from 'antd';
import { useEffect, useState } from 'react';
import { api, type Params, type Row } from '../api.ts';
import { affinityTypeLabel } from '../components/affinity.tsx';
import { bytes } from '../components/common.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { navigate } from '../router.tsx';
import { useSession } from '../session.tsx';

const STEPS = ['Zone', 'Image', 'Offering', 'Disks', 'Network', 'Access', 'Review'];

export function DeployWizard() {
  const session = useSession();
  const tip = (param: string) => session.describe('deployVirtualMachine', param);
  const { run } = useActions();
  const [form] = Form.useForm();
  const [step, setStep] = useState(0);
  const [busy, setBusy] = useState(false);
  const zoneid = Form.useWatch('zoneid', form) as string | undefined;
  const imageKind = (Form.useWatch('imageKind', form) as string | undefined) ?? 'template';
  const offeringId = Form.useWatch('serviceofferingid', form) as string | undefined;
  const diskOfferingId = Form.useWatch('diskofferingid', form) as string | undefined;
  const zones = useList('listZones', 'zone', { available: true });
  const templates = useList('listTemplates', 'template', {
    templatefilter: 'executable',
    zoneid,
    isready: true,
  });
  const isos = useList('listIsos', 'iso', { isofilter: 'executable', zoneid, isready: true, bootable: true });
  const offerings = useList('listServiceOfferings', 'serviceoffering');
  const diskOfferings = useList('listDiskOfferings', 'diskoffering');
  const zone = zones.find((z) => z.id === zoneid);
  // An Advanced zone has no default network: the VM goes on networks its owner may deploy into.
  const advanced = zone?.networktype === 'Advanced';
  const networks = useList('listNetworks', 'network', {
    zoneid,
    canusefordeploy: advanced ? true : undefined,
  });
  const groups = useList('listSecurityGroups', 'securitygroup');
  const keys = useList('listSSHKeyPairs', 'sshkeypair');
  // The caller's own groups: a deploy may only join groups of the VM's owner.
  const affinityGroups = useList('listAffinityGroups', 'affinitygroup');
  const hypervisors = useList('listHypervisors', 'hypervisor', { zoneid });
  const [account, setAccount] = useState<Row>();
  const offering = offerings.find((o) => o.id === offeringId);
  const diskOffering = diskOfferings.find((o) => o.id === diskOfferingId);

  useEffect(() => {
    if (!session.can('listAccounts')) return;
    api('listAccounts', { name: session.info.account, domainid: session.info.domainid })
      .then((r) => setAccount(((r.account as Row[]) ?? [])[0]))
      .catch(() => setAccount(undefined));
  }, [session]);

  if (!session.can('deployVirtualMachine'))
    return (
      <Alert
        type="info"
        showIcon
        title="Deploying instances is not available"
        description="The management server does not offer deployVirtualMachine to your account."
      />
    );

  const fieldsOf: Record<number, string[]> = {
    0: ['zoneid'],
    1: ['imageKind', 'templateid'],
    2: ['serviceofferingid', 'cpuNumber', 'memory'],
    3: ['diskofferingid', 'size'],
    4: ['networkids', 'securitygroupids', 'affinitygroupids'],
    5: ['name', 'keypair', 'userdata'],
  };
  const next = async () => {
    await form.validateFields(fieldsOf[step] ?? []);
    setStep(step + 1);
  };

  const v = form.getFieldsValue(true) as Row;
  const cpu = offering?.iscustomized ? Number(v.cpuNumber ?? 0) : Number(offering?.cpunumber ?? 0);
  const mem = offering?.iscustomized ? Number(v.memory ?? 0) : Number(offering?.memory ?? 0);
  const limitProblems: string[] = [];
  if (account) {
    const over = (label: string, total: unknown, limit: unknown, add: number) => {
      const l = Number(limit);
      if (limit !== 'Unlimited' && Number.isFinite(l) && l >= 0 && Number(total ?? 0) + add > l)
        limitProblems.push(
          `${label}: ${Number(total ?? 0)} used + ${add} requested exceeds the limit of ${l}`,
        );
    };
    over('Instances', account.vmtotal, account.vmlimit, 1);
    over('CPUs', account.cputotal, account.cpulimit, cpu);
    over('Memory (MiB)', account.memorytotal, account.memorylimit, mem);
    over('Volumes', account.volumetotal, account.volumelimit, diskOfferingId ? 2 : 1);
  }

  const deploy = async () => {
    const params: Params = {
      zoneid: v.zoneid,
      templateid: v.templateid,
      serviceofferingid: v.serviceofferingid,
      name: v.name || undefined,
      displayname: v.name || undefined,
      keypair: v.keypair,
      networkids: (v.networkids as string[] | undefined)?.join(','),
      securitygroupids: (v.securitygroupids as string[] | undefined)?.join(','),
      affinitygroupids: (v.affinitygroupids as string[] | undefined)?.join(','),
      userdata: v.userdata ? btoa(String.fromCharCode(...new TextEncoder().encode(v.userdata))) : undefined,
    };
    if (offering?.iscustomized) {
      params['details[0].cpuNumber'] = v.cpuNumber;
      params['details[0].memory'] = v.memory;
      params['details[0].cpuSpeed'] = offering.cpuspeed ?? 1000;
    }
    if (imageKind === 'iso') {
      // An ISO boots from an empty root disk, which needs its own disk offering.
      params.diskofferingid = v.diskofferingid;
      params.hypervisor = hypervisors[0]?.name;
    } else if (v.diskofferingid) {
      params.diskofferingid = v.diskofferingid;
    }
    if (v.size && diskOffering?.iscustomized) params.size = v.size;
    setBusy(true);
    const r = await run(`Deploy ${v.name || 'instance'}`, 'deployVirtualMachine', params);
    setBusy(false);
    const vm = r?.virtualmachine as Row | undefined;
    if (vm) navigate(`/instances/${vm.id}`);
  };

  const images = imageKind === 'iso' ? isos : templates;
  return (
    <div>
      <Typography.Title level={3}>Add an instance</Typography.Title>
      <Card>
        <Steps
          current={step}
          size="small"
          items={STEPS.map((title) => ({ title }))}
          style={{ marginBottom: 24 }}
          responsive
        />
        <Form form={form} layout="vertical" style={{ maxWidth: 640 }} preserve>
          <Form.Item
            name="zoneid"
            tooltip={tip('zoneid')}
            label="Zone"
            hidden={step !== 0}
            rules={[{ required: true, message: 'Choose a zone' }]}
          >
            <Select options={zones.map((z) => ({ value: z.id, label: z.name }))} aria-label="Zone" />
          </Form.Item>
          <Form.Item name="imageKind" label="Boot from" initialValue="template" hidden={step !== 1}>
            <Radio.Group
              options={[
                { value: 'template', label: 'Template' },
                ...(session.can('listIsos') ? [{ value: 'iso', label: 'ISO' }] : []),
              ]}
            />
          </Form.Item>
          <Form.Item
            name="templateid"
            tooltip={tip('templateid')}
            label={imageKind === 'iso' ? 'ISO' : 'Template'}
            hidden={step !== 1}
            rules={[{ required: true, message: 'Choose an image' }]}
            help={
              images.length === 0
                ? 'No ready image in this zone: register one under Storage & images'
                : undefined
            }
          >
            <Select
              showSearch={{ optionFilterProp: 'label' }}
              options={images.map((t) => ({
                value: t.id,
                label: `${t.name}${t.ostypename ? ` (${t.ostypename})` : ''}`,
              }))}
              aria-label="Image"
            />
          </Form.Item>
          <Form.Item
            name="serviceofferingid"
            tooltip={tip('serviceofferingid')}
            label="Service offering"
            hidden={step !== 2}
            rules={[{ required: true, message: 'Choose an offering' }]}
          >
            <Select
              aria-label="Service offering"
              options={offerings.map((o) => ({
                value: o.id,
                label: o.iscustomized
                  ? `${o.name} (custom size)`
                  : `${o.name} — ${o.cpunumber} CPU, ${o.memory} MiB`,
              }))}
            />
          </Form.Item>
          {offering?.iscustomized && (
            <Space hidden={step !== 2}>
              <Form.Item
                name="cpuNumber"
                label="CPUs"
                hidden={step !== 2}
                rules={[{ required: true, message: 'CPUs' }]}
              >
                <InputNumber min={1} max={Number(offering.maxcpunumber ?? 64)} />
              </Form.Item>
              <Form.Item
                name="memory"
                label="Memory (MiB)"
                hidden={step !== 2}
                rules={[{ required: true, message: 'Memory' }]}
              >
                <InputNumber min={128} step={256} max={Number(offering.maxmemory ?? 1048576)} />
              </Form.Item>
            </Space>
          )}
          <Form.Item
            name="diskofferingid"
            tooltip={tip('diskofferingid')}
            label={imageKind === 'iso' ? 'Root disk offering' : 'Data disk (optional)'}
            hidden={step !== 3}
            rules={imageKind === 'iso' ? [{ required: true, message: 'An ISO needs a root disk' }] : []}
          >
            <Select
              allowClear
              aria-label="Disk offering"
              options={diskOfferings.map((o) => ({
                value: o.id,
                label: o.iscustomized
                  ? `${o.name} (custom size)`
                  : `${o.name} — ${bytes(Number(o.disksize) * 1024 ** 3)}`,
              }))}
            />
          </Form.Item>
          {diskOffering?.iscustomized && (
            <Form.Item
              name="size"
              tooltip={tip('size')}
              label="Disk size (GiB)"
              hidden={step !== 3}
              rules={[{ required: true, message: 'Size' }]}
            >
              <InputNumber min={1} />
            </Form.Item>
          )}
          <Form.Item
            name="networkids"
            tooltip={tip('networkids')}
            label={advanced ? 'Networks (the first chosen is the default)' : 'Networks'}
            hidden={step !== 4}
            rules={advanced ? [{ required: true, message: 'Choose a network' }] : []}
            help={
              networks.length > 0
                ? undefined
                : advanced
                  ? 'No network to deploy into: create one under Networks'
                  : 'No network listed: the zone default is used'
            }
          >
            <Select
              mode="multiple"
              aria-label="Networks"
              options={networks.map((n) => ({ value: n.id, label: n.name }))}
            />
          </Form.Item>
          {zone?.securitygroupsenabled !== false && session.can('listSecurityGroups') && (
            <Form.Item
              name="securitygroupids"
              tooltip={tip('securitygroupids')}
              label="Security groups"
              hidden={step !== 4}
            >
              <Select
                mode="multiple"
                aria-label="Security groups"
                options={groups.map((g) => ({ value: g.id, label: g.name }))}
              />
            </Form.Item>
          )}
          {session.can('listAffinityGroups') && (
            <Form.Item
              name="affinitygroupids"
              tooltip={tip('affinitygroupids')}
              label="Affinity groups"
              hidden={step !== 4}
              help={
                affinityGroups.length === 0
                  ? 'No affinity group: create one under Affinity groups'
                  : undefined
              }
            >
              <Select
                mode="multiple"
                aria-label="Affinity groups"
                options={affinityGroups.map((g) => ({
                  value: g.id,
                  label: `${g.name} — ${affinityTypeLabel(g.type)}`,
                }))}
              />
            </Form.Item>
          )}
          <Form.Item
            name="name"
            tooltip={tip('name')}
            label="Name"
            hidden={step !== 5}
            rules={[
              {
                pattern: /^[a-zA-Z][a-zA-Z0-9-]{0,62}$/,
                message: 'Letters, digits and hyphens, starting with a letter',
              },
            ]}
          >
            <Input aria-label="Name" />
          </Form.Item>
          <Form.Item name="keypair" tooltip={tip('keypair')} label="SSH key pair" hidden={step !== 5}>
            <Select
              allowClear
              aria-label="SSH key pair"
              options={keys.map((k) => ({ value: k.name, label: k.name }))}
            />
          </Form.Item>
          <Form.Item
            name="userdata"
            tooltip={tip('userdata')}
            label="User data (cloud-init)"
            hidden={step !== 5}
          >
            <Input.TextArea rows={4} aria-label="User data" />
          </Form.Item>
        </Form>
        {step === 6 && (
          <>
            <Descriptions
              size="small"
              column={1}
              bordered
              items={[
                ['Zone', zone?.name],
                [imageKind === 'iso' ? 'ISO' : 'Template', images.find((t) => t.id === v.templateid)?.name],
                ['Offering', offering ? `${offering.name} (${cpu} CPU, ${mem} MiB)` : ''],
                ['Disk', diskOffering?.name ?? 'none'],
                [
                  'Networks',
                  // In the order chosen: the first is the VM's default network.
                  ((v.networkids ?? []) as string[])
                    .map((id) => networks.find((n) => n.id === id)?.name)
                    .filter(Boolean)
                    .join(', ') || 'zone default',
                ],
                [
                  'Security groups',
                  groups
                    .filter((g) => (v.securitygroupids ?? []).includes(g.id))
                    .map((g) => g.name)
                    .join(', ') || 'default',
                ],
                [
                  'Affinity groups',
                  affinityGroups
                    .filter((g) => (v.affinitygroupids ?? []).includes(g.id))
                    .map((g) => g.name)
                    .join(', ') || 'none',
                ],
                ['Name', v.name || '(generated)'],
                ['SSH key pair', v.keypair ?? 'none'],
              ].map(([label, value]) => ({
                key: String(label),
                label: String(label),
                children: String(value ?? ''),
              }))}
            />
            {limitProblems.length > 0 ? (
              <Alert
                style={{ marginTop: 16 }}
                type="error"
                showIcon
                title="This request exceeds the account's limits"
                description={
                  <ul>
                    {limitProblems.map((p) => (
                      <li key={p}>{p}</li>
                    ))}
                  </ul>
                }
              />
            ) : (
              account && (
                <Alert
                  style={{ marginTop: 16 }}
                  type="success"
                  showIcon
                  title={`Within the limits of account ${account.name}`}
                />
              )
            )}
          </>
        )}
        <Space style={{ marginTop: 16 }}>
          <Button disabled={step === 0} onClick={() => setStep(step - 1)}>
            Back
          </Button>
          {step < STEPS.length - 1 ? (
            <Button type="primary" onClick={next}>
              Next
            </Button>
          ) : (
            <Button type="primary" loading={busy} disabled={limitProblems.length > 0} onClick={deploy}>
              Deploy
            </Button>
          )}
          <Button onClick={() => navigate('/instances')}>Cancel</Button>
        </Space>
      </Card>
    </div>
  );
}
