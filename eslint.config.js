import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'data/**', '**/dist/**'] },
  { files: ['.ci/**/*.mjs'], languageOptions: { globals: { console: 'readonly', process: 'readonly' } } },
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
    files: ['packages/server/src/config.ts', 'packages/cli/src/**', '**/*.test.ts', 'packages/server/src/test/**', 'bench/**'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
