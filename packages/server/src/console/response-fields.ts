/** Response fields of createConsoleEndpoint, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const consoleResponseFields: ResponseFields = {
  consoleendpoint: {
    success: 'true when a console link was made; false when the instance is not running (see details).',
    url: 'One-time address of the console page in the browser, valid for console.token.validity seconds.',
    websocket: 'Where a client connects for the console stream: token, host, port, path and any extra value.',
    details: 'Why no console link was made; left out on success.',
  },
};
