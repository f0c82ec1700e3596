import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'data/**', '**/dist/**'] },
  { files: ['.ci/**/*.mjs', 'packages/agent/native/*.mjs'], languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly' } } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': ['error', { selector: "MemberExpression[object.name='process'][property.name='env']", message: 'Read configuration through config.ts, validated once at start.' }],
    },
  },
  {
    // The web console (React): hooks rules for its components; JSX settings stay in this package only.
    files: ['packages/console/**/*.tsx', 'packages/console/src/**/*.ts'],
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  {
    files: ['packages/server/src/config.ts', 'packages/cli/src/**', '**/*.test.ts', 'packages/server/src/test/**', 'bench/**', 'scripts/**', 'vitest.config.ts', 'vitest.global-setup.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  // dependency-cruiser reads its configuration as CommonJS.
  { files: ['.dependency-cruiser*.cjs'], languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } }, rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
