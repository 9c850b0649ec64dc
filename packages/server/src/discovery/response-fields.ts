/** Response fields of listApis and listCapabilities, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

const notOffered = (what: string) => `Not returned by Nimbostack: ${what}.`;

export const discoveryResponseFields: ResponseFields = {
  api: {
    name: 'Name of the command, as passed in the command= parameter.',
    description: 'What the command does, in Nimbostack’s words.',
    isasync:
      'true when the command answers with a job ID and finishes in the background (poll queryAsyncJobResult).',
    since: 'CloudStack version that introduced the command; left out when it has always existed.',
    params:
      'Parameters the caller may pass: name, description, type, length (most characters), required, and since when known.',
    response: 'Fields of the command’s answer: name, description and type of each.',
    related: notOffered('related commands are not listed'),
    type: notOffered('commands have no type of their own'),
  },
  capability: {
    securitygroupsenabled: 'true when at least one zone uses security groups.',
    dynamicrolesenabled: 'Always true: what each role may call is set by its permission rules.',
    cloudstackversion:
      'CloudStack API version Nimbostack speaks, e.g. 4.22.0.0; left out unless the setting that exposes it is on.',
    userpublictemplateenabled: 'Always true: users may make their own templates public.',
    supportELB: "Always 'false': there is no elastic load balancer service.",
    projectinviterequired:
      'The project.invite.required setting: true when adding to a project invites instead.',
    allowusercreateprojects:
      'The allow.user.create.projects setting: whether User accounts may create projects.',
    customdiskofferingminsize: 'Smallest size of a custom-sized disk, in GiB: 1.',
    customdiskofferingmaxsize: 'Largest size of a custom-sized disk, in GiB: 1024.',
    regionsecondaryenabled: 'Always false: image stores belong to zones.',
    kvmsnapshotenabled: 'Always true: volumes of KVM instances can be snapshotted.',
    allowuserviewdestroyedvm:
      'true when end users see their destroyed (not yet expunged) instances (a setting).',
    allowuserexpungerecovervm:
      'true when end users may expunge or recover their destroyed instances (a setting).',
    allowuserexpungerecovervolume: 'Always true: end users may expunge or recover their destroyed volumes.',
    allowuserviewalldomainaccounts: 'Always false: end users see only their own account.',
    allowuserforcestopvm: 'Always true: end users may force-stop their instances.',
    kubernetesserviceenabled: 'Always false: there is no Kubernetes service.',
    kubernetesclusterexperimentalfeaturesenabled: 'Always false: there is no Kubernetes service.',
    dynamicscalingenabled: 'Always true: service offerings may allow scaling (of stopped instances).',
    defaultuipagesize: 'Number of rows per page the web UI shows by default: 20.',
    apilimitinterval: 'Length of the API rate-limit window, in seconds.',
    apilimitmax: 'Most API requests an account may make in one window.',
    instancesstatsretentiontime: 'Always 0: instance statistics are not kept.',
    instancesstatsuseronly: 'Always false.',
    additionalconfigenabled: notOffered('instances take no extra hypervisor configuration'),
    customhypervisordisplayname: notOffered('there is no custom hypervisor'),
    extensionspath: notOffered('it has no orchestrator extensions'),
    instanceleaseenabled: notOffered('instances have no lease'),
    instancesdisksstatsretentionenabled: notOffered('disk statistics are not kept'),
    instancesdisksstatsretentiontime: notOffered('disk statistics are not kept'),
    sharedfsvmmincpucount: notOffered('it has no shared file systems'),
    sharedfsvmminramsize: notOffered('it has no shared file systems'),
  },
};
