// Worker entry: TypeScript sources load through tsx (the workspace's "source" condition comes from execArgv).
import { register } from 'tsx/esm/api';
register();
await import('./worker.ts');
