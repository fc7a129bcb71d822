/**
 * The supervisor sidecar's server: MCP over Streamable HTTP (the MCP SDK's
 * own transport, stateless) at http://supervise:9100/ on the bottle's
 * internal network. The agent calls it to ask for what its fence refuses;
 * each request becomes one file in /run/supervise/queue (the state dir's
 * supervise/queue), and a person decides on the host (`bottle requests`,
 * `bottle approve`, `bottle deny`), whose decision the server reads back
 * from /run/supervise/decisions (read-only here).
 *
 * Bundled on its own by scripts/build.mjs (dist/sidecars/supervise.cjs,
 * for the Node of Debian's package, 18) and copied into each bottle's state
 * dir. It holds no credential and reaches nothing but its two directories.
 */
import "./node18.js"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { randomBytes } from "node:crypto"
import { readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { z } from "zod"
import { capabilityName, egressTarget, MAX_PENDING, MAX_REASON, REQUEST_ID, SUPERVISE_PORT, type Decision, type SuperviseRequest } from "../resources/supervise.js"

const QUEUE = process.env["BOTTLE_SUPERVISE_QUEUE"] ?? "/run/supervise/queue"
const DECISIONS = process.env["BOTTLE_SUPERVISE_DECISIONS"] ?? "/run/supervise/decisions"
const BOTTLE = process.env["BOTTLE_NAME"] ?? "bottle"
const PORT = Number(process.env["BOTTLE_SUPERVISE_PORT"] ?? SUPERVISE_PORT)
/** The most bytes of one HTTP request body: a tool call is small. */
const MAX_BODY = 64 * 1024

const log = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), bottle: BOTTLE, ...event })}\n`)

const decisionOf = (id: string): Decision | undefined => {
  try {
    const d = JSON.parse(readFileSync(join(DECISIONS, `${id}.json`), "utf8")) as Decision
    return d.decision === "approved" || d.decision === "denied" ? d : undefined
  } catch {
    return undefined
  }
}

const pending = (): number => {
  try {
    return readdirSync(QUEUE).filter((f) => f.endsWith(".json") && decisionOf(f.slice(0, -5)) === undefined).length
  } catch {
    return 0
  }
}

const text = (t: string, isError = false) => ({ content: [{ type: "text" as const, text: t }], ...(isError ? { isError: true } : {}) })

/** Files a request; what the agent is told. */
const file = (kind: SuperviseRequest["kind"], what: string, reason: string) => {
  if (pending() >= MAX_PENDING) {
    log({ event: "refused", kind, what, why: "too many pending" })
    return text(`Refused: ${MAX_PENDING} requests already wait for a person. Ask again once they are decided.`, true)
  }
  const request: SuperviseRequest = { id: `r${randomBytes(6).toString("hex")}`, bottle: BOTTLE, kind, what, reason: reason.slice(0, MAX_REASON), at: new Date().toISOString() }
  const path = join(QUEUE, `${request.id}.json`)
  writeFileSync(`${path}.tmp`, `${JSON.stringify(request)}\n`, { mode: 0o600, flag: "wx" })
  renameSync(`${path}.tmp`, path)
  log({ event: "filed", id: request.id, kind, what })
  return text(`Request ${request.id} is filed: a person will decide (${kind} ${what}). Call check_request with this id to learn the decision; do not ask again meanwhile.`)
}

const makeServer = () => {
  const server = new McpServer({ name: "bottle-supervise", version: "1" }, {
    instructions: "Your sandbox (a bottle) lets you reach only the hosts its person allowed. When you need something it refuses, ask here; a person decides."
  })
  server.registerTool("request_egress", {
    title: "Ask to reach a host",
    description: "Ask the person who runs this sandbox to allow outgoing connections to a host (HTTPS on port 443 unless you name another port). Explain why in reason.",
    inputSchema: { host: z.string().max(253), port: z.number().int().min(1).max(65535).optional(), reason: z.string().min(1).max(MAX_REASON) }
  }, async ({ host, port, reason }) => {
    const what = egressTarget(host, port)
    if (typeof what !== "string") return text(what.problem, true)
    return file("egress", what, reason)
  })
  server.registerTool("request_capability", {
    title: "Ask for a capability",
    description: "Ask the person who runs this sandbox for something else its fence refuses (a capability, a tool, a mount), by a short name. Explain why in reason.",
    inputSchema: { capability: z.string().max(64), reason: z.string().min(1).max(MAX_REASON) }
  }, async ({ capability, reason }) => {
    const what = capabilityName(capability)
    if (typeof what !== "string") return text(what.problem, true)
    return file("capability", what, reason)
  })
  server.registerTool("check_request", {
    title: "Learn a request's decision",
    description: "Whether the person approved or denied a request you filed (pending until they decide).",
    inputSchema: { id: z.string().regex(REQUEST_ID) }
  }, async ({ id }) => {
    const d = decisionOf(id)
    if (d === undefined) return text(`Request ${id} is pending: no decision yet.`)
    return text(`Request ${id} was ${d.decision}${d.note !== "" ? `: ${d.note}` : "."}`)
  })
  return server
}

createServer((req, res) => {
  const chunks: Array<Buffer> = []
  let size = 0
  req.on("data", (c: Buffer) => {
    size += c.length
    if (size > MAX_BODY) { res.writeHead(413).end(); req.destroy(); return }
    chunks.push(c)
  })
  req.on("end", () => {
    if (res.writableEnded) return
    let body: unknown
    if (size > 0) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      } catch {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null }))
        return
      }
    }
    // Stateless: a server and a transport per request, closed with it.
    const server = makeServer()
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
    res.on("close", () => { void transport.close(); void server.close() })
    server.connect(transport)
      .then(() => transport.handleRequest(req, res, body))
      .catch((e: unknown) => {
        log({ event: "error", error: e instanceof Error ? e.message : String(e) })
        if (!res.headersSent) res.writeHead(500).end()
      })
  })
}).listen(PORT, "0.0.0.0", () => log({ event: "listening", port: PORT }))
