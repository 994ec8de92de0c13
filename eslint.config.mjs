// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/histories/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['infra/**/*.js', '*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Workflow code must be deterministic: no Node built-ins and no I/O modules, only types from the rest.
    files: ['workflows/**/*.ts'],
    ignores: ['workflows/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflow code must be deterministic: no Node built-ins' })),
          patterns: [
            { group: ['../lib/*', '../activities', '../activities/*', '../worker/*', '../api/*'], allowTypeImports: true, message: 'workflows may import only types from activities/ and lib/' },
            { group: ['pg', '@aws-sdk/*', 'busboy', 'hono', '@hono/*', '@temporalio/worker', '@temporalio/client', '@temporalio/activity'], message: 'no I/O libraries in workflow code' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' }, { name: 'setInterval', message: 'use sleep() in a loop' }, { name: 'fetch', message: 'I/O belongs in activities' }, { name: 'process', message: 'no process state in workflows' }],
    },
  },
);
