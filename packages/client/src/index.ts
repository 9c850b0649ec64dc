export {
  type AsyncJobResult,
  type ClientOptions,
  CloudStackClient,
  CloudStackError,
  flattenParams,
  type Params,
  type SessionCredentials,
} from './client.ts';
export { apiDate, javaUrlEncode, signParams } from './signing.ts';
