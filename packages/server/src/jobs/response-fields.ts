/** Response fields of async job objects, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

const job: FieldDescriptions = {
  account: 'Name of the account whose user started the job.',
  accountid: 'UUID of the account whose user started the job.',
  userid: 'UUID of the user who started the job.',
  domainid: 'UUID of the domain of that account.',
  domainpath: 'Path of the domain of that account, from ROOT.',
  cmd: 'Command the job runs, as its CloudStack class name (e.g. org.apache.cloudstack.api.command.user.vm.DeployVMCmd).',
  jobprocstatus: 'Progress step inside the job: 0 (Nimbostack does not report finer progress).',
  jobresultcode: 'Error code of a failed job (e.g. 530 or 431); 0 while pending and on success.',
  jobresulttype: "Shape of jobresult: 'object'; left out while the job is pending.",
  jobresult:
    'What the command answered: the object it acted on on success, or errorcode and errortext on failure; left out while pending.',
  jobinstancetype:
    'Kind of object the job acts on, e.g. VirtualMachine, Volume, Network; left out when none.',
  jobinstanceid: 'UUID of the object the job acts on; left out when none.',
  managementserverid: 'UUID of the management server that runs the job.',
  managementservername: 'Name of the management server that runs the job.',
  created: 'When the job was submitted (ISO 8601 with offset).',
  completed: 'When the job finished (ISO 8601 with offset); left out while it runs.',
};

export const jobResponseFields: ResponseFields = {
  queryAsyncJobResult: job,
  asyncjobs: job,
};
