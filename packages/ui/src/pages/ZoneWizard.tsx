/**
 * Creates a whole zone in one flow, as CloudStack's onboarding wizard does: zone, for an Advanced
 * zone its physical network (VXLAN, traffic types) and public IP range, pod, cluster, host,
 * primary and secondary storage, then enables the zone. The zone is created Disabled so
 * that nothing is deployed into it half-built; a failed step is shown with the API's errortext
 * and can be retried from where it stopped.
 */
import { Alert, Button, Card, Form, Input, Select, Space, Steps, Switch, Typography } from 'antd';
import { useState } from 'react';
import { api, errorText, type Params, type Row, waitForJob } from '../api.ts';
import { navigate } from '../router.tsx';

interface StepDef {
  title: string;
  /** Only for Advanced zones (a Basic zone's guests share the pod's network). */
  advanced?: boolean;
  fields: {
    name: string;
    label: string;
    required?: boolean;
    initial?: string;
    help?: string;
    password?: boolean;
    options?: string[];
  }[];
}

const STEPS: StepDef[] = [
  {
    title: 'Zone',
    fields: [
      { name: 'zoneName', label: 'Zone name', required: true },
      {
        name: 'networktype',
        label: 'Network type',
        required: true,
        initial: 'Advanced',
        options: ['Advanced', 'Basic'],
      },
      { name: 'dns1', label: 'Public DNS', required: true, initial: '8.8.8.8' },
      { name: 'internaldns1', label: 'Internal DNS', required: true, initial: '8.8.8.8' },
    ],
  },
  {
    title: 'Physical network',
    advanced: true,
    fields: [
      { name: 'physicalName', label: 'Physical network name', required: true, initial: 'physical' },
      {
        name: 'isolation',
        label: 'Isolation method',
        required: true,
        initial: 'VXLAN',
        options: ['VXLAN'],
      },
      {
        name: 'vni',
        label: 'VNI range',
        required: true,
        initial: '5000-5999',
        help: 'One VXLAN network identifier per isolated network, e.g. 5000-5999',
      },
      {
        name: 'guestcidr',
        label: 'Guest CIDR',
        required: true,
        initial: '10.1.1.0/24',
        help: "The default subnet of the zone's isolated networks",
      },
      {
        name: 'publicLabel',
        label: 'Public traffic KVM bridge',
        initial: 'cloudbr0',
        help: "The hosts' bridge to the public network",
      },
    ],
  },
  {
    title: 'Public IPs',
    advanced: true,
    fields: [
      { name: 'publicGateway', label: 'Public gateway', required: true },
      { name: 'publicNetmask', label: 'Public netmask', required: true, initial: '255.255.255.0' },
      { name: 'publicStart', label: 'First public IP', required: true },
      { name: 'publicEnd', label: 'Last public IP', required: true },
    ],
  },
  {
    title: 'Pod',
    fields: [
      { name: 'podName', label: 'Pod name', required: true },
      { name: 'gateway', label: 'Gateway', initial: '192.168.100.1' },
      { name: 'netmask', label: 'Netmask', initial: '255.255.255.0' },
      { name: 'startip', label: 'Start IP', initial: '192.168.100.10' },
      { name: 'endip', label: 'End IP', initial: '192.168.100.250' },
    ],
  },
  {
    title: 'Cluster',
    fields: [
      { name: 'clusterName', label: 'Cluster name', required: true },
      {
        name: 'hypervisor',
        label: 'Hypervisor',
        required: true,
        initial: 'Simulator',
        options: ['KVM', 'Simulator'],
      },
    ],
  },
  {
    title: 'Host',
    fields: [
      {
        name: 'hostUrl',
        label: 'Host URL',
        required: true,
        help: 'agent://<agent name> for a Nimbostack agent',
      },
      { name: 'hostUsername', label: 'Username', initial: 'root' },
      { name: 'hostPassword', label: 'Password or agent token', required: true, password: true },
    ],
  },
  {
    title: 'Primary storage',
    fields: [
      { name: 'primaryName', label: 'Primary storage name', required: true },
      { name: 'primaryUrl', label: 'Primary storage URL or path', required: true },
    ],
  },
  {
    title: 'Secondary storage',
    fields: [
      { name: 'secondaryName', label: 'Secondary storage name', required: true },
      { name: 'secondaryUrl', label: 'Secondary storage URL or path', required: true },
    ],
  },
];

type Made = {
  zone?: Row;
  physical?: Row;
  traffic?: string[];
  physicalEnabled?: boolean;
  publicRange?: boolean;
  pod?: Row;
  cluster?: Row;
  host?: boolean;
  primary?: boolean;
  secondary?: boolean;
  enabled?: boolean;
};

export function ZoneWizard() {
  const [form] = Form.useForm();
  const [step, setStep] = useState(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [made, setMade] = useState<Made>({});
  const [progress, setProgress] = useState<string[]>([]);
  const advanced = (Form.useWatch('networktype', { form, preserve: true }) ?? 'Advanced') === 'Advanced';
  const steps = STEPS.filter((s) => advanced || !s.advanced);
  const review = step === steps.length;

  const next = async () => {
    await form.validateFields(steps[step].fields.map((f) => f.name));
    setStep(step + 1);
  };

  const create = async () => {
    const v = form.getFieldsValue(true) as Record<string, string>;
    setBusy(true);
    setError(undefined);
    const done: Made = { ...made };
    const log = (s: string) => setProgress((p) => [...p, s]);
    // Physical networks and traffic types are async commands: their object is the job's result.
    const call = async (command: string, params: Params, key: string): Promise<Row> => {
      const first = await api(command, params);
      const r = typeof first.jobid === 'string' ? await waitForJob(first.jobid, command) : first;
      const obj = r[key];
      return (Array.isArray(obj) ? obj[0] : obj) as Row;
    };
    try {
      if (!done.zone) {
        done.zone = await call(
          'createZone',
          {
            name: v.zoneName,
            networktype: v.networktype,
            dns1: v.dns1,
            internaldns1: v.internaldns1,
            guestcidraddress: v.networktype === 'Advanced' ? v.guestcidr : undefined,
            allocationstate: 'Disabled',
          },
          'zone',
        );
        log(`Zone ${v.zoneName} created`);
      }
      const zoneid = done.zone.id;
      if (v.networktype === 'Advanced') {
        if (!done.physical) {
          done.physical = await call(
            'createPhysicalNetwork',
            { zoneid, name: v.physicalName, isolationmethods: v.isolation, vlan: v.vni },
            'physicalnetwork',
          );
          log(`Physical network ${v.physicalName} created (${v.isolation} ${v.vni})`);
        }
        const physicalnetworkid = done.physical.id;
        done.traffic ??= [];
        for (const traffictype of ['Guest', 'Public', 'Management']) {
          if (done.traffic.includes(traffictype)) continue;
          await call(
            'addTrafficType',
            {
              physicalnetworkid,
              traffictype,
              kvmnetworklabel: traffictype === 'Public' ? v.publicLabel : undefined,
            },
            'traffictype',
          );
          done.traffic.push(traffictype);
          log(`${traffictype} traffic added`);
        }
        if (!done.physicalEnabled) {
          await call('updatePhysicalNetwork', { id: physicalnetworkid, state: 'Enabled' }, 'physicalnetwork');
          done.physicalEnabled = true;
          log(`Physical network ${v.physicalName} enabled`);
        }
        if (!done.publicRange) {
          await api('createVlanIpRange', {
            zoneid,
            forvirtualnetwork: true,
            gateway: v.publicGateway,
            netmask: v.publicNetmask,
            startip: v.publicStart,
            endip: v.publicEnd,
          });
          done.publicRange = true;
          log(`Public IPs ${v.publicStart}–${v.publicEnd} added`);
        }
      }
      if (!done.pod) {
        done.pod = await call(
          'createPod',
          {
            zoneid,
            name: v.podName,
            gateway: v.gateway,
            netmask: v.netmask,
            startip: v.startip,
            endip: v.endip,
          },
          'pod',
        );
        log(`Pod ${v.podName} created`);
      }
      const podid = done.pod.id;
      if (!done.cluster) {
        done.cluster = await call(
          'addCluster',
          {
            zoneid,
            podid,
            clustername: v.clusterName,
            hypervisor: v.hypervisor,
            clustertype: 'CloudManaged',
          },
          'cluster',
        );
        log(`Cluster ${v.clusterName} added`);
      }
      const clusterid = done.cluster.id;
      if (!done.primary) {
        await api('createStoragePool', {
          zoneid,
          podid,
          clusterid,
          name: v.primaryName,
          url: v.primaryUrl,
          scope: 'cluster',
        });
        done.primary = true;
        log(`Primary storage ${v.primaryName} added`);
      }
      if (!done.secondary) {
        await api('addImageStore', { zoneid, name: v.secondaryName, url: v.secondaryUrl, provider: 'NFS' });
        done.secondary = true;
        log(`Secondary storage ${v.secondaryName} added`);
      }
      if (!done.host) {
        await api('addHost', {
          zoneid,
          podid,
          clusterid,
          hypervisor: v.hypervisor,
          url: v.hostUrl,
          username: v.hostUsername,
          password: v.hostPassword,
        });
        done.host = true;
        log(`Host ${v.hostUrl} added`);
      }
      if (form.getFieldValue('enable') !== false && !done.enabled) {
        await api('updateZone', { id: zoneid, allocationstate: 'Enabled' });
        done.enabled = true;
        log(`Zone ${v.zoneName} enabled`);
      }
      setMade(done);
      navigate('/infrastructure?tab=zones');
    } catch (e) {
      setMade(done);
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <Typography.Title level={3}>Add a zone</Typography.Title>
      <Card>
        <Steps
          current={step}
          size="small"
          items={[...steps.map((s) => ({ title: s.title })), { title: 'Review' }]}
          // An Advanced zone's nine steps do not fit with their titles beside them.
          titlePlacement="vertical"
          style={{ marginBottom: 24 }}
          responsive
        />
        <Form form={form} layout="vertical" style={{ maxWidth: 560 }} preserve>
          {steps.map((s, i) =>
            s.fields.map((f) => (
              <Form.Item
                key={f.name}
                name={f.name}
                label={f.label}
                help={f.help}
                initialValue={f.initial}
                hidden={i !== step}
                rules={f.required ? [{ required: true, message: `${f.label} is required` }] : []}
              >
                {f.options ? (
                  <Select options={f.options.map((o) => ({ value: o, label: o }))} aria-label={f.label} />
                ) : f.password ? (
                  <Input.Password />
                ) : (
                  <Input />
                )}
              </Form.Item>
            )),
          )}
          <Form.Item
            name="enable"
            label="Enable the zone when done"
            valuePropName="checked"
            initialValue
            hidden={!review}
          >
            <Switch />
          </Form.Item>
        </Form>
        {review && <Review steps={steps} values={form.getFieldsValue(true)} />}
        {progress.length > 0 && (
          <Alert
            type="info"
            style={{ margin: '16px 0' }}
            title={
              <ul style={{ margin: 0 }}>
                {progress.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            }
          />
        )}
        {error && (
          <Alert
            type="error"
            showIcon
            role="alert"
            style={{ margin: '16px 0' }}
            title={error}
            description="Fix the step and press Create zone again: the parts already created are kept."
          />
        )}
        <Space>
          <Button disabled={step === 0 || busy} onClick={() => setStep(step - 1)}>
            Back
          </Button>
          {review ? (
            <Button type="primary" loading={busy} onClick={create}>
              Create zone
            </Button>
          ) : (
            <Button type="primary" onClick={next}>
              Next
            </Button>
          )}
          <Button onClick={() => navigate('/infrastructure')}>Cancel</Button>
        </Space>
      </Card>
    </div>
  );
}

function Review({ steps, values }: { steps: StepDef[]; values: Record<string, string> }) {
  return (
    <dl style={{ display: 'grid', gridTemplateColumns: 'max-content 1fr', gap: '4px 16px' }}>
      {steps
        .flatMap((s) => s.fields)
        .filter((f) => !f.password)
        .map((f) => [
          <dt key={`${f.name}-t`}>{f.label}</dt>,
          <dd key={`${f.name}-d`} style={{ margin: 0 }}>
            {values[f.name] ?? ''}
          </dd>,
        ])}
    </dl>
  );
}
