/** The project's boundaries, checked by `npm run lint` (dependency-cruiser). */
module.exports = {
  forbidden: [
    {
      name: 'workflows-are-deterministic',
      comment: 'workflows/ may import activities/, lib/, worker/ and api/ for types only',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { path: '^(activities|lib|worker|api)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workflows-no-node-builtins',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'api-does-not-run-builds',
      comment: 'the API starts and queries workflows; it never imports the worker or the activities',
      severity: 'error',
      from: { path: '^api/' },
      to: { path: '^(worker|activities)/' },
    },
    {
      name: 'lib-is-shared-code',
      comment: 'lib/ is used by api/ and worker/, so it must not depend on them',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(api|worker|activities)/' },
    },
    {
      name: 'cli-is-a-client',
      comment: 'the ibs client speaks only the REST contract: it imports nothing of the service outside lib/cli/',
      severity: 'error',
      from: { path: '^lib/cli/' },
      to: { path: '^(api|worker|activities|workflows|lib/(?!cli/))' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^dist/|\\.test\\.ts$)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
