import { describeStateStore } from './conformance.js';

describeStateStore('SQLite', { database: async () => ({ url: undefined, drop: async () => undefined }) });
