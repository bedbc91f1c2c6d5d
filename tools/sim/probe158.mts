process.on('SIGTERM', () => process.exit(1));
const { simulate } = await import('./src/simulate.ts');
const r = await simulate({ seed: 158, durationMs: 3000, faultRate: 0.03, spares: 2, readIndexShare: 0.5, readers: 2, reconfig: 0.05 });
console.log(r.ok, r.violation);
