/** The offerings capability: service (compute) and disk offerings. */
import { diskOfferingCommands } from './disk-offerings.ts';
import { serviceOfferingCommands } from './service-offerings.ts';

export const offeringCommands = [...serviceOfferingCommands, ...diskOfferingCommands];
