// ESLint for the TypeScript tree (npm run lint; part of npm test). Formatting is Prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'shared/', 'python-runners/.venv/', 'results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Unused names are the compiler's check (noUnusedLocals, noUnusedParameters); `_` marks an intended one.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  { files: ['bin/**/*.js', 'python-runners/tests/*.mjs'], languageOptions: { globals: { process: 'readonly', URL: 'readonly' } } },
);
