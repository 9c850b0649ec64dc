#!/usr/bin/env node
// nimbo is TypeScript run through tsx (a dependency of the workspace), so it needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
