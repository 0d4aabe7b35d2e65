// Lint is for what the type-checker cannot see: promises nobody awaits or handles. A daemon that
// drops one loses its error (or dies of an unhandled rejection); a promise passed where a
// callback's result is ignored does the same. Style is left to review.
import tseslint from "typescript-eslint";

export default tseslint.config(
  // The fixture is wrong on purpose: test/support/lint.test.ts lints it alone.
  { ignores: ["node_modules/**", ".test-artifacts/**", "examples/**/dist/**", "test/fixtures/lint/**"] },
  {
    files: ["src/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts", "test/**/*.ts", "examples/**/*.ts", "bin/**/*.js"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: { allowDefaultProject: ["bin/*.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test runs and reports what test(), describe() and it() return.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] }] },
      ],
      "@typescript-eslint/no-misused-promises": "error",
    },
  },
);
