/**
 * The supervisor: an MCP server on the bottle's internal network
 * (http://supervise:9100/) that the agent asks for what its fence refuses.
 * Each request is one JSON file in the state dir's `supervise/queue/`,
 * written by the server (the agent's words, so untrusted: bounded, checked,
 * shown escaped); a person's decision is one file in `supervise/decisions/`,
 * written by bottle on the host and read by the server (read-only there).
 * Shared by the server (src/sidecars/supervise.ts) and the CLI. Pure.
 */

export const SUPERVISE_PORT = 9100
export const SUPERVISE_ALIAS = "supervise"
/** The bundled server, as written into the state dir's `supervise/app/`. */
export const SUPERVISE_SERVER_FILE = "server.cjs"
export const SUPERVISE_READY_CHECK: ReadonlyArray<string> = ["bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${SUPERVISE_PORT}`]

/** The most requests waiting at once per bottle: an agent cannot flood its person (or the disk). */
export const MAX_PENDING = 50
/** The most bytes of a request file bottle reads. */
export const MAX_REQUEST_BYTES = 16 * 1024
export const MAX_REASON = 2000

export type RequestKind = "egress" | "capability"

export interface SuperviseRequest {
  readonly id: string
  readonly bottle: string
  readonly kind: RequestKind
  /** egress: `host` or `host:port`, as egress.allow writes it. capability: its name. */
  readonly what: string
  readonly reason: string
  /** ISO time the server filed it. */
  readonly at: string
}

export interface Decision {
  readonly id: string
  readonly decision: "approved" | "denied"
  readonly at: string
  /** What bottle did about it, for the agent (an egress request: the spec file changed and applied). */
  readonly note: string
}

export const REQUEST_ID = /^r[0-9a-f]{12}$/
const HOST = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/
const CAPABILITY = /^[a-z0-9][a-z0-9._:-]{0,63}$/

/** An egress request's target as egress.allow writes it, or what is wrong. Wildcards are a person's to write, not an agent's to ask. */
export const egressTarget = (host: unknown, port: unknown): string | { readonly problem: string } => {
  if (typeof host !== "string") return { problem: "host must be a string" }
  const h = host.trim().toLowerCase().replace(/\.$/, "")
  if (!HOST.test(h) || !/[a-z]/.test(h.split(".").pop()!)) return { problem: "host must be a DNS name such as api.example.com (no wildcard, no address)" }
  if (port === undefined || port === null) return h
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return { problem: "port must be a number from 1 to 65535" }
  return port === 443 ? h : `${h}:${port}`
}

export const capabilityName = (c: unknown): string | { readonly problem: string } =>
  typeof c === "string" && CAPABILITY.test(c.trim().toLowerCase()) ? c.trim().toLowerCase() : { problem: "capability must be a short name (letters, digits, . _ : -)" }

/** A request file as read back: every field checked, or undefined (a file the agent could have shaped is never trusted). */
export const parseRequest = (text: string, bottle: string): SuperviseRequest | undefined => {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== "object") return undefined
  const r = v as Record<string, unknown>
  if (typeof r["id"] !== "string" || !REQUEST_ID.test(r["id"])) return undefined
  if (r["bottle"] !== bottle) return undefined
  if (r["kind"] !== "egress" && r["kind"] !== "capability") return undefined
  if (typeof r["reason"] !== "string" || typeof r["at"] !== "string" || typeof r["what"] !== "string") return undefined
  const what = r["kind"] === "egress"
    ? (() => { const [h, p] = (r["what"] as string).split(":"); return egressTarget(h, p === undefined ? undefined : Number(p)) })()
    : capabilityName(r["what"])
  if (typeof what !== "string") return undefined
  if (Number.isNaN(Date.parse(r["at"]))) return undefined
  return { id: r["id"], bottle, kind: r["kind"], what, reason: (r["reason"] as string).slice(0, MAX_REASON), at: r["at"] }
}

/** Text from an agent made safe for a terminal: no control characters or escapes, one line, bounded. */
export const shown = (text: string, max = 200): string => {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g, " ").replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}
