/**
 * Descriptions of response fields, in our words. The field names and types are upstream's (the
 * catalog); what each field means in Nimbostack is said here once per response object, and once
 * for the fields that many objects share (account, domainid, zoneid …). Each capability folder
 * keeps the descriptions of the objects it presents in its own `response-fields.ts`.
 */

/** Field descriptions of one response object: field name → description. */
export type FieldDescriptions = Record<string, string>;

/** Field descriptions by response object name (`virtualmachine`, `network` …). */
export type ResponseFields = Record<string, FieldDescriptions>;

/** Fields whose meaning is the same on every object that has them. */
export const COMMON_FIELDS: FieldDescriptions = {};

/** Looks up the description of a response object's field: the object's own, else the common one. */
export class ResponseFieldIndex {
  private readonly objects = new Map<string, FieldDescriptions>();

  constructor(sources: ResponseFields[]) {
    for (const source of sources)
      for (const [object, fields] of Object.entries(source)) {
        if (this.objects.has(object)) throw new Error(`response object ${object} described twice`);
        this.objects.set(object, fields);
      }
  }

  describe(object: string | null, field: string): string | undefined {
    return (object ? this.objects.get(object)?.[field] : undefined) ?? COMMON_FIELDS[field];
  }
}
