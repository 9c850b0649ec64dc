export {
  type AsyncJobResult,
  type ClientOptions,
  CloudStackClient,
  CloudStackError,
  flattenParams,
  type Params,
} from './client.ts';
export { apiDate, javaUrlEncode, signParams } from './signing.ts';
