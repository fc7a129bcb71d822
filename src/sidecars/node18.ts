/**
 * Debian's Node (18) has Web Crypto as a module, not yet as a global; the MCP
 * SDK expects the global. Imported first by the supervisor's server.
 */
import { webcrypto } from "node:crypto"

const g = globalThis as { crypto?: unknown }
if (g.crypto === undefined) g.crypto = webcrypto
