// ESLint 9 flat config (`npm run lint`). typescript-eslint's syntax-only `recommended` preset, not the
// type-checked presets: `tsc --noEmit` already runs in CI, and type-aware linting would multiply lint time.
// Formatting is prettier's (.prettierrc.json, `npm run format`); `npm run lint` checks it after eslint.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', '.cache/', 'node_modules/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // A disable comment that no longer suppresses anything fails the lint, so every one left in the code is needed.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // House style: a leading `_` marks a binding kept on purpose (dropping keys with `{ k: _k, ...rest }`).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { varsIgnorePattern: '^_', argsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
);
