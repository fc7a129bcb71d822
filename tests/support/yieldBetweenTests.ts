/**
 * Lets the test worker's event loop turn between tests. Integration tests run
 * the CLI synchronously; a file of such tests back to back would otherwise
 * keep the loop from reading vitest's own messages for minutes, and vitest
 * then reports "Timeout calling onTaskUpdate" though every test passed.
 */
import { afterEach } from "vitest"

afterEach(() => new Promise<void>((resolve) => setImmediate(resolve)))
