import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration suites share one Docker Engine and one prefix each; files run one at a time.
    fileParallelism: false,
    setupFiles: ["tests/support/yieldBetweenTests.ts"],
    reporters: ["default", "./tests/support/summaryReporter.ts"]
  }
})
