/** The management-server ⇄ agent contract. Version of the message format both sides speak. */
export const PROTOCOL_VERSION = 1;
